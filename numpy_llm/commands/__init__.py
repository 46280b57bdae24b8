"""One module per command: ``configure(parser)`` adds its flags, ``run(args)`` returns the exit code."""
