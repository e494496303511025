from wae_lightning.report.cli import main

main()
