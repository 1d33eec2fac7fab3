"""Builder of the synthetic Windows 11 24H2 memory image used by the memory-image tests and demo.

`isf` declares the kernel structures once (24H2 public layouts) and writes the ISF symbol table;
`paging` holds physical memory and x64 4-level page tables; `winobj` writes kernel/user objects
through the ISF declarations; `pemini` builds the few small PE files the scenario needs itself
(kernel stub with its CodeView record, process executables); `scenario` plants processes,
modules, hotpatches and hooks and records what it planted.
"""
