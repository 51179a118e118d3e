"""opendojo.label"""
