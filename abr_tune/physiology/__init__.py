"""Measures of ABR physiology on waveforms: the peak picker (`peaks`) and detection, latency effects,
spread and spectra (`measures`). Pure numpy; the simulator and the fidelity metrics both use them."""
