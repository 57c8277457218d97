"""The stand-in miles package (tests only): what `train.py` and mileage doctor import."""
