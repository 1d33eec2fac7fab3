# The installed tool and its commands.
hpforensics --version
