"""opendojo.evaluate"""
