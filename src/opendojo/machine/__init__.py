"""opendojo.machine"""
