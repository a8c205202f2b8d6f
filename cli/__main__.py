from pagoda_inverse.cli.app import main

main()
