"""opendojo.numerics"""
