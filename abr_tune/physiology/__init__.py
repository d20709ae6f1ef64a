"""ABR physiology: the peak picker (`peaks`), detection, latency effects, spread and spectra
(`measures`), and the physical range of every condition and sampling number (`ranges`).
Pure numpy; the simulator, the CLIs and the fidelity metrics use them."""
