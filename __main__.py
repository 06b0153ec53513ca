"""Entry point for `pulumi up`: everything happens in program.main()."""

import program

program.main()
