"""The emulated hardware: physical RAM, x86-64 page tables, the MMU walk, the TLB, the CPU."""
