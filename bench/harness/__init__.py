"""The child side of the process model: one worker runs one cell (bench/harness/worker.py), with one
training loop for every task, the harness's clock, step windows, memory probes and efficiency."""
