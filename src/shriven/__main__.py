from shriven.cli import main

main()
