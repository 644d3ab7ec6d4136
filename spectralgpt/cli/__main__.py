from spectralgpt.cli import app

app(prog_name="spectralgpt")
