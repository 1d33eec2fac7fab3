"""Memory-image analysis over the Volatility 3 library: what is mapped where, what the loader
says about hotpatches, and the engine's verdict on every image page.

    from hpforensics.memimage.session import open_image
    from hpforensics.memimage.analyze import analyze
    session = open_image("win11.raw", symbols=["samples/symbols"])
    result = analyze(session.context, session.kernel, references=...)

The Volatility plugins in plugins/windows/hotpatch.py and `hpforensics dump analyze` are thin
adapters over these functions.
"""
