from hpforensics.cli.app import main

main()
