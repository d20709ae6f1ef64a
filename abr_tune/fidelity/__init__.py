"""Does a generator produce real ABR physiology? Metrics against ground truth (`metrics`), the
evaluation run (`evaluation`), its summary tables (`summary`) and figures (`figures`)."""
