"""ABR physiology: species profiles (`profiles`: waves, windows, the primary wave), the peak picker
(`peaks`), detection from level series and thresholds (`detection`), detection, latency effects, spread
and spectra of single traces (`measures`), and the physical range of every condition and sampling number
(`ranges`). Pure numpy/scipy; the simulator, the CLIs and the fidelity metrics use them."""
