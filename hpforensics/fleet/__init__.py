"""Fleet scale: the same commands over thousands of devices on Dask (issue 9).

`cluster` opens the place work runs (this process, a local cluster, a running scheduler) and
runs tasks with one retry and a progress bar; `timeline` splits `hpforensics timeline` per
device and merges the roll-ups; `dumps` does the same per memory image for `dump analyze`;
`parquet` writes the per-device partitions. Dask and pyarrow load only in fleet runs.
"""
