"""lbctl: the command-line tool."""
