"""opendojo.train"""
