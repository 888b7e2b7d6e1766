from cnnstat.cli import main

main()
