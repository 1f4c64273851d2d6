"""Set-up shared by the bench scripts in bench/ (a library, not a bench: it prints nothing)."""
