from mailer.cli.main import main

main()
