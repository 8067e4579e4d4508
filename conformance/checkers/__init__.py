"""Named property checkers, registered by name; a spec's check: picks one."""
