"""What every stage shares: the checks that name the option to fix, and what an image is."""
