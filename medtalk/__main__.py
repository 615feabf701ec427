from medtalk.cli import main

main()
