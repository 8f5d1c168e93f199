from speedrun.cli import main

main()
