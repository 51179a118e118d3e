"""opendojo.fleet"""
