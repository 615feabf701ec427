"""Built-in model parts: the motion autoencoder, ACM, CMF, guidance encoders."""
