"""Running TRUSTED skills: hash before import, execute the verified bytes, validate both sides."""
