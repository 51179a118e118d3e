"""opendojo.clips"""
