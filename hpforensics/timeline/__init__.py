"""From event-log records to the auditor's view: normalised events, update lifecycles, monthly
compliance, the Autopatch summaries and the memory join, and the outputs of a timeline run.

The log readers (one module per format) are hpforensics.evtx; nothing here reads a file format."""
