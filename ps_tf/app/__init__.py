"""The operator web app: person search over indexed galleries in a browser (`ps-search-app`)."""
