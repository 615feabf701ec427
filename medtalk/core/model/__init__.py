"""The MEDTalk networks (paper section 3, sizes of the authors' released code)."""
