"""The program: the composition root, the web app, the command line and the demo."""
