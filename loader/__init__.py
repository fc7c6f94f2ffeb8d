"""ELF files turned into images to map: segments, entry, auxv inputs, the initial stack."""
