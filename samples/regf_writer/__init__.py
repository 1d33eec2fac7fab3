"""A small writer for Windows registry hive files (regf), written from the published format.

    from regf_writer import Key, Value, write_hive
    root = Key("ROOT", when)
    root.add(r"Microsoft\\PolicyManager\\current\\device\\Update", when,
             [Value.dword("AllowRebootlessUpdates", 1)])
    open("SOFTWARE", "wb").write(write_hive(root, file_name=..., time=when).data)
"""
from .writer import (Key, LogEntry, Value, Written, filetime, log_entry, log_file, old_log_file,
                     write_hive)

__all__ = ["Key", "LogEntry", "Value", "Written", "filetime", "log_entry", "log_file",
           "old_log_file", "write_hive"]
