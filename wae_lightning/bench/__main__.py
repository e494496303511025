from wae_lightning.bench.training import main

main()
