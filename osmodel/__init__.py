"""The kernel: address spaces, the fault handler, processes, system calls, tracing, the CLI."""
