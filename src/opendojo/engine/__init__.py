"""opendojo.engine"""
