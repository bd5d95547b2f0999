from vecpipe.cli import app

app()
