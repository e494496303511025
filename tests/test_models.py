import os
import traceback
from functools import partial

import lightning as L
import pytest
import torch

from tests.conftest import MNIST_SHAPE
from wae_lightning.callbacks import DivergenceGuard, LastCheckpoint
from wae_lightning.data import MNISTDataModule
from wae_lightning.models import AE, RAE, SWAE, VAE, WAEGAN, WAEMMD, BetaVAE
from wae_lightning.models.losses import mmd_imq
from wae_lightning.models.optimization import step_decay
from wae_lightning.nets import ConvolutionalNetworks
from wae_lightning.samplers import MixtureSampler

MODELS = {
    "ae": AE,
    "vae": VAE,
    "wae_gan": WAEGAN,
    "wae_mmd": WAEMMD,
    "swae": SWAE,
    "rae": RAE,
    "beta_vae": BetaVAE,
}
CONV_8 = ConvolutionalNetworks(dim_h=8)


def tiny(model_name: str, **kwargs) -> AE:
    return MODELS[model_name](image_shape=MNIST_SHAPE, **{"n_z": 8, "net": CONV_8, **kwargs})


def cpu_trainer(**kwargs) -> L.Trainer:
    defaults = dict(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )
    return L.Trainer(**{**defaults, **kwargs})


@pytest.mark.parametrize("model_name", MODELS)
def test_losses_fall_when_overfitting_one_batch(model_name, data_dir):
    L.seed_everything(0)
    datamodule = MNISTDataModule("mnist", data_dir, batch_size=32, download=False)
    datamodule.setup()
    images = datamodule.example_images(32, split="train")
    model = tiny(model_name, optimizer=partial(torch.optim.Adam, lr=2e-3))

    def terms() -> dict[str, float]:
        torch.manual_seed(1)  # the same VAE noise and prior sample before and after
        with torch.no_grad():
            return {name: float(value) for name, value in model.loss_terms(images).items()}

    before = terms()
    cpu_trainer(max_epochs=60, overfit_batches=1).fit(model, datamodule=datamodule)
    after = terms()
    assert after["recon"] < 0.6 * before["recon"], (before, after)
    assert after["recon_mse"] < 0.6 * before["recon_mse"], (before, after)
    assert after["loss"] < 0.6 * before["loss"], (before, after)


def parameters_of(module: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten().clone() for p in module.parameters()])


class OptimizerStepRecorder(L.Callback):
    """Records, for every optimizer step, which networks it changed and which had gradients."""

    def __init__(self) -> None:
        self.steps: list[tuple[str, set[str], set[str]]] = []

    def on_train_start(self, trainer: L.Trainer, model: WAEGAN) -> None:
        networks = {
            "encoder": model.encoder,
            "decoder": model.decoder,
            "discriminator": model.discriminator,
        }
        for name, optimizer in zip(
            ["autoencoder", "discriminator"], trainer.optimizers, strict=True
        ):
            before: dict[str, torch.Tensor] = {}
            with_grad: set[str] = set()

            def pre_hook(opt, args, kwargs, before=before, with_grad=with_grad):
                before.update({net: parameters_of(module) for net, module in networks.items()})
                with_grad.clear()
                with_grad.update(
                    net
                    for net, module in networks.items()
                    if any(p.grad is not None for p in module.parameters())
                )

            def post_hook(opt, args, kwargs, name=name, before=before, with_grad=with_grad):
                changed = {
                    net
                    for net, module in networks.items()
                    if not torch.equal(before[net], parameters_of(module))
                }
                self.steps.append((name, changed, set(with_grad)))

            optimizer.register_step_pre_hook(pre_hook)
            optimizer.register_step_post_hook(post_hook)


def test_wae_gan_steps_change_only_their_own_networks(data_dir):
    L.seed_everything(0)
    datamodule = MNISTDataModule("mnist", data_dir, batch_size=16, download=False)
    recorder = OptimizerStepRecorder()
    model = tiny("wae_gan")
    cpu_trainer(max_epochs=1, limit_train_batches=3, callbacks=[recorder]).fit(
        model, datamodule=datamodule
    )

    assert [name for name, _, _ in recorder.steps] == ["discriminator", "autoencoder"] * 3
    for name, changed, with_grad in recorder.steps:
        expected = {"discriminator"} if name == "discriminator" else {"encoder", "decoder"}
        assert changed == expected, f"{name} step changed {changed}"
        assert with_grad == expected, f"{name} step saw gradients in {with_grad}"


@pytest.mark.parametrize("model_name", MODELS)
def test_schedulers_step_every_epoch(model_name, data_dir):
    datamodule = MNISTDataModule("mnist", data_dir, batch_size=16, download=False)
    model = tiny(
        model_name,
        optimizer=partial(torch.optim.Adam, lr=1e-3),
        scheduler=partial(torch.optim.lr_scheduler.StepLR, step_size=1, gamma=0.5),
    )
    trainer = cpu_trainer(max_epochs=3, limit_train_batches=1)
    trainer.fit(model, datamodule=datamodule)
    expected_optimizers = 2 if model_name == "wae_gan" else 1
    assert len(trainer.optimizers) == expected_optimizers
    for optimizer in trainer.optimizers:
        assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 * 0.5**3)


def test_wae_gan_losses_are_the_tutorials_written_on_logits():
    """Against the tutorial's own formulas on probabilities D = sigmoid(logit)."""
    model = tiny("wae_gan", penalty_weight=0.3, prior_sigma=1.5)
    codes = torch.randn(64, 8) * 3 + 1
    torch.manual_seed(7)
    terms = {**model.discriminator_terms(codes), **model.adversarial_penalty(codes)}
    torch.manual_seed(7)
    prior = model.sample_prior(64)
    d_prior, d_codes = (
        torch.sigmoid(model.discriminator(prior)),
        torch.sigmoid(model.discriminator(codes)),
    )
    ascended = 0.3 * (torch.log(d_prior).mean() + torch.log(1 - d_codes).mean())
    torch.testing.assert_close(terms["disc_loss"], -ascended)
    torch.testing.assert_close(terms["penalty"], -0.3 * torch.log(d_codes).mean())
    accuracy = ((d_prior > 0.5).float().mean() + (d_codes < 0.5).float().mean()) / 2
    torch.testing.assert_close(terms["disc_acc"], accuracy)


def test_wae_gan_learning_rates_are_separate(data_dir):
    model = tiny(
        "wae_gan",
        optimizer=partial(torch.optim.Adam, lr=1e-3),
        discriminator_optimizer=partial(torch.optim.Adam, lr=5e-4),
    )
    autoencoder, discriminator = model.configure_optimizers()
    assert autoencoder["optimizer"].param_groups[0]["lr"] == 1e-3
    assert discriminator["optimizer"].param_groups[0]["lr"] == 5e-4
    autoencoder_params = {id(p) for p in autoencoder["optimizer"].param_groups[0]["params"]}
    discriminator_params = {id(p) for p in discriminator["optimizer"].param_groups[0]["params"]}
    assert autoencoder_params == {
        id(p) for p in [*model.encoder.parameters(), *model.decoder.parameters()]
    }
    assert discriminator_params == {id(p) for p in model.discriminator.parameters()}


def test_vae_penalty_is_beta_times_closed_form_kl():
    torch.manual_seed(0)
    model = tiny("vae", beta=2.0, reconstruction={"cost": "bce", "reduction": "sum"})
    images = torch.rand(5, 1, 28, 28)
    mean, log_variance = model.encode_distribution(images)
    closed_form = 0.5 * (mean**2 + log_variance.exp() - 1 - log_variance).sum(1).mean()
    _, terms = model.encode_for_loss(images)
    torch.testing.assert_close(terms["kl"], closed_form)
    torch.testing.assert_close(terms["penalty"], 2.0 * closed_form)
    per_pixel = tiny("vae", reconstruction={"cost": "bce", "reduction": "mean"})
    per_pixel.load_state_dict(model.state_dict())
    _, terms = per_pixel.encode_for_loss(images)
    torch.testing.assert_close(terms["penalty"], closed_form / 784)


def test_vae_noise_is_created_on_the_models_device():
    # On the meta device, noise drawn on the CPU would fail to combine with the model's tensors.
    model = tiny("vae").to("meta")
    codes, terms = model.encode_for_loss(torch.zeros(2, 1, 28, 28, device="meta"))
    assert codes.device.type == "meta" and terms["kl"].device.type == "meta"
    assert model.sample_prior(3).device.type == "meta"


def test_vae_reparameterization_draws_from_the_posterior():
    torch.manual_seed(0)
    mean = torch.tensor([[-1.0, 0.0, 2.0]]).expand(50_000, 3)
    log_variance = torch.tensor([[0.0, 2.0, -2.0]]).expand(50_000, 3)
    codes = VAE.reparameterize(mean, log_variance)
    torch.testing.assert_close(codes.mean(0), mean[0], atol=0.03, rtol=0)
    torch.testing.assert_close(codes.std(0), torch.exp(0.5 * log_variance[0]), atol=0.03, rtol=0)


def test_vae_samples_its_codes_in_the_loss_but_encodes_the_mean():
    model = tiny("vae").eval()
    images = torch.rand(3, 1, 28, 28)
    torch.testing.assert_close(model.encode(images), model.encode(images))
    codes_a, _ = model.encode_for_loss(images)
    codes_b, _ = model.encode_for_loss(images)
    assert not torch.equal(codes_a, codes_b)


@pytest.mark.parametrize("model_name", MODELS)
def test_every_model_handles_a_single_image(model_name, data_dir):
    model = tiny(model_name).eval()
    image = torch.rand(1, 1, 28, 28)
    assert model.encode(image).shape == (1, 8)
    assert model.reconstruct(image).shape == (1, 1, 28, 28)
    assert model.sample(1).shape == (1, 1, 28, 28)
    assert model.interpolate(image, torch.rand(1, 1, 28, 28), steps=3).shape == (1, 3, 1, 28, 28)
    assert torch.isfinite(model.loss_terms(image)["loss"])
    datamodule = MNISTDataModule(
        "mnist", data_dir, batch_size=16, eval_batch_size=1, download=False
    )
    results = cpu_trainer(limit_test_batches=3).test(model, datamodule=datamodule, verbose=False)
    assert set(results[0]) == {f"test/{term}" for term in model.loss_terms_logged}


def test_outputs_are_images_and_interpolation_ends_at_the_inputs():
    model = tiny("ae").eval()
    start, end = torch.rand(2, 1, 28, 28), torch.rand(2, 1, 28, 28)
    path = model.interpolate(start, end, steps=5)
    torch.testing.assert_close(path[:, 0], model.reconstruct(start))
    torch.testing.assert_close(path[:, -1], model.reconstruct(end))
    assert path.min() >= 0 and path.max() <= 1
    generator_samples = [
        model.sample(4, generator=torch.Generator().manual_seed(3)) for _ in range(2)
    ]
    torch.testing.assert_close(*generator_samples)


def test_a_traversal_moves_one_dimension_per_row_and_its_middle_column_is_the_reconstruction():
    model = tiny("wae_mmd", prior_sigma=2.0).eval()
    images = torch.rand(3, *MNIST_SHAPE)
    offsets = torch.linspace(-3, 3, 7)
    grid = model.traverse(images, [5, 0], offsets)
    assert grid.shape == (3, 2, 7, *MNIST_SHAPE)
    torch.testing.assert_close(grid[:, 0, 3], model.reconstruct(images), rtol=0, atol=1e-6)
    torch.testing.assert_close(grid[:, 1, 3], model.reconstruct(images), rtol=0, atol=1e-6)
    codes = model.encode(images)
    moved = codes.clone()
    moved[:, 5] += -3 * 2.0  # the first column: 3 prior standard deviations below
    torch.testing.assert_close(grid[:, 0, 0], model.decode(moved), rtol=0, atol=1e-6)
    assert not torch.allclose(grid[:, 0, 0], grid[:, 0, -1])


def test_prior_samples_have_the_configured_spread():
    model = tiny("wae_gan", prior_sigma=2.0)
    assert model.sample_prior(20_000).std().item() == pytest.approx(2.0, rel=0.02)


def test_sample_refuses_a_sampler_that_was_never_fitted_and_says_how_to_fit_it():
    model = tiny("ae")
    with pytest.raises(ValueError, match=r"no sampler 'flow' \(it has prior\): evaluate its"):
        model.sample(2, sampler="flow")
    assert model.sample(2).shape == (2, *MNIST_SHAPE)  # the prior, by default
    with pytest.raises(ValueError, match="sampler name 'Bad Name' must be lower-case"):
        model.add_sampler("Bad Name", MixtureSampler())


@pytest.mark.parametrize(
    ("model_name", "kwargs", "message"),
    [
        ("ae", {"n_z": 0}, "n_z"),
        ("ae", {"prior_sigma": 0.0}, "prior_sigma must be > 0"),
        ("vae", {"beta": -1.0}, "beta"),
        ("wae_gan", {"penalty_weight": -0.5}, "penalty_weight"),
        ("wae_gan", {"prior_sigma": -1.0}, "prior_sigma must be > 0"),
        ("wae_mmd", {"penalty_weight": -1.0}, "penalty_weight"),
        ("swae", {"penalty_weight": -1.0}, "penalty_weight"),
        ("swae", {"projections": 0}, "projections must be an integer >= 1"),
        ("swae", {"power": 3}, "power must be 1 or 2"),
        ("rae", {"code_penalty_weight": -1.0}, "code_penalty_weight"),
        ("rae", {"decoder_penalty_weight": -1e-3}, "decoder_penalty_weight"),
        ("rae", {"decoder_regularizer": "dropout"}, "decoder_regularizer must be one of"),
        (
            "rae",
            {"decoder_regularizer": "gradient_penalty", "compile_mode": "default"},
            "set model.compile_mode=null",
        ),
        ("beta_vae", {"beta_warmup_epochs": -1}, "beta_warmup_epochs"),
        ("ae", {"input_noise": -0.1}, "input_noise"),
        (
            "ae",
            {"net": {"_target_": "torch.nn.Linear", "in_features": 2, "out_features": 2}},
            "model.net's _target_ must be a family of wae_lightning.nets",
        ),
        ("ae", {"encoder_pretraining_steps": -1}, "encoder_pretraining_steps"),
        ("ae", {"optimizer": partial(torch.optim.Adam, lr=0.0)}, "learning rate must be > 0"),
        (
            "wae_gan",
            {"discriminator_optimizer": partial(torch.optim.Adam, lr=-1.0)},
            "discriminator_optimizer",
        ),
    ],
)
def test_nonsensical_model_values_are_rejected(model_name, kwargs, message):
    with pytest.raises(ValueError, match=message):
        MODELS[model_name](image_shape=MNIST_SHAPE, **{"n_z": 4, **kwargs})


@pytest.mark.parametrize("model_name", MODELS)
def test_trains_in_bf16_mixed_precision(model_name, data_dir):
    """Autocast to bf16 (on the CPU here): the losses must stay finite and in float32."""
    L.seed_everything(0)
    model = tiny(model_name)
    datamodule = MNISTDataModule("mnist", data_dir, batch_size=32, download=False)
    trainer = cpu_trainer(
        precision="bf16-mixed", max_epochs=1, limit_train_batches=4, limit_val_batches=2
    )
    trainer.fit(model, datamodule=datamodule)
    for name in ("train/loss", "val/loss", "val/recon_mse"):
        value = trainer.callback_metrics[name]
        assert torch.isfinite(value) and value.dtype == torch.float32, name


@pytest.mark.parametrize("model_name", MODELS)
def test_channels_last_changes_the_layout_not_the_results(model_name):
    torch.manual_seed(0)
    plain = tiny(model_name, channels_last=False).eval()
    fast = tiny(model_name, channels_last=True)
    fast.load_state_dict(plain.state_dict())
    fast.configure_model()
    fast.eval()
    convolutions = [
        m for m in fast.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))
    ]
    assert all(m.weight.is_contiguous(memory_format=torch.channels_last) for m in convolutions)
    images = torch.rand(4, 1, 28, 28)
    torch.testing.assert_close(
        fast.reconstruct(images), plain.reconstruct(images), atol=1e-5, rtol=1e-4
    )


@pytest.mark.compiled
@pytest.mark.parametrize("model_name", MODELS)
def test_every_model_trains_validates_and_tests_compiled(model_name, data_dir, tmp_path):
    """torch.compile of each network (on the CPU inductor's C++ backend), through training,
    validation and test, close to the eager model's losses on the same weights; checkpoints
    keep the eager parameter names."""
    L.seed_everything(0)
    model = tiny(model_name, compile_mode="default")
    datamodule = MNISTDataModule("mnist", data_dir, batch_size=32, download=False)
    trainer = cpu_trainer(
        max_epochs=1, limit_train_batches=3, limit_val_batches=2, limit_test_batches=2
    )
    trainer.fit(model, datamodule=datamodule)
    compiled = trainer.test(model, datamodule=datamodule, verbose=False)[0]
    assert set(compiled) == {f"test/{term}" for term in model.loss_terms_logged}
    trainer.save_checkpoint(tmp_path / "compiled.ckpt")
    eager = tiny(model_name)
    state = torch.load(tmp_path / "compiled.ckpt", weights_only=True)["state_dict"]
    eager.load_state_dict(state)  # strict: the same names as an eager model
    reference = cpu_trainer(limit_test_batches=2).test(eager, datamodule=datamodule, verbose=False)
    # the reconstruction terms are deterministic; the penalties draw noise or prior samples
    for term in ("recon", "recon_mse"):
        assert compiled[f"test/{term}"] == pytest.approx(reference[0][f"test/{term}"], rel=1e-3)


def test_an_unknown_compile_mode_is_rejected():
    with pytest.raises(ValueError, match="compile_mode must be one of"):
        tiny("ae", compile_mode="fast")


class HostReadBackRecorder(L.Callback):
    """Records who reads tensor values back to Python (.item(), bool(), float(), ...) during
    training steps after the first few: on a GPU each such read waits for the device."""

    METHODS = ("item", "__bool__", "__float__", "__int__", "tolist", "cpu", "numpy")

    def __init__(self, first: int, last: int) -> None:
        self.first, self.last = first, last
        self.callers: list[str] = []
        self.originals = {name: getattr(torch.Tensor, name) for name in self.METHODS}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == self.first:
            for name, original in self.originals.items():
                setattr(torch.Tensor, name, self.recording(original))

    def recording(self, original):
        def method(tensor, *args, **kwargs):
            self.callers.append(traceback.extract_stack(limit=2)[0].filename)
            return original(tensor, *args, **kwargs)

        return method

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if batch_idx == self.last:
            self.restore()

    def restore(self) -> None:
        for name, original in self.originals.items():
            setattr(torch.Tensor, name, original)


@pytest.mark.parametrize("model_name", MODELS)
def test_training_steps_read_nothing_back_from_the_device(model_name, data_dir, tmp_path):
    """Neither this project nor Lightning reads a value back in a training step, the
    divergence guard and the step-interval checkpoint included: the guard reads the device's
    note every 6 batches here, after batches 6 and 12, outside the batches watched. (Adam's
    step counters, read by torch.optim, are CPU tensors unless Adam is fused or capturable.)"""
    recorder = HostReadBackRecorder(first=6, last=10)
    guards = [
        DivergenceGuard(tmp_path, check_every_n_steps=6),
        LastCheckpoint(tmp_path, every_n_train_steps=None, every_n_minutes=10),
    ]
    datamodule = MNISTDataModule("mnist", data_dir, batch_size=16, download=False)
    try:
        trainer = cpu_trainer(
            max_epochs=1,
            limit_train_batches=14,
            callbacks=[recorder, *guards],
            enable_checkpointing=True,
        )
        trainer.fit(tiny(model_name), datamodule=datamodule)
    finally:
        recorder.restore()
    offending = {caller for caller in recorder.callers if f"torch{os.sep}optim" not in caller}
    assert not offending, offending


@pytest.mark.gpu
@pytest.mark.parametrize("model_name", MODELS)
def test_trains_on_the_gpu_in_bf16(model_name, data_dir):
    model = tiny(model_name)
    datamodule = MNISTDataModule("mnist", data_dir, batch_size=64, download=False)
    trainer = L.Trainer(
        accelerator="gpu",
        devices=1,
        precision="bf16-mixed",
        max_epochs=1,
        limit_train_batches=5,
        limit_val_batches=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
    )
    trainer.fit(model, datamodule=datamodule)
    assert torch.isfinite(trainer.callback_metrics["val/loss"])
    codes, _ = model.cuda().encode_for_loss(torch.rand(4, 1, 28, 28, device="cuda"))
    assert codes.device.type == "cuda"
    assert all(optimizer.defaults.get("fused") for optimizer in trainer.optimizers)


@pytest.mark.gpu
@pytest.mark.compiled
@pytest.mark.parametrize("model_name", MODELS)
def test_cuda_graphs_train_validate_test_and_keep_every_output(model_name, data_dir):
    """compile_mode=reduce-overhead: each batch marks a new step, and codes kept across calls
    are copies, so none is overwritten by a later replay of the same graph."""
    L.seed_everything(0)
    model = tiny(model_name, compile_mode="reduce-overhead")
    datamodule = MNISTDataModule("mnist", data_dir, batch_size=64, download=False)
    trainer = L.Trainer(
        accelerator="gpu",
        devices=1,
        precision="bf16-mixed",
        max_epochs=2,
        limit_train_batches=6,
        limit_val_batches=2,
        limit_test_batches=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
    )
    trainer.fit(model, datamodule=datamodule)
    results = trainer.test(model, datamodule=datamodule, verbose=False)[0]
    assert all(torch.isfinite(torch.tensor(value)) for value in results.values())
    model.cuda().eval()  # Lightning's teardown after testing moved the model to the CPU
    images = datamodule.example_images(128).cuda()
    kept = [model.encode(batch) for batch in images.split(32)]  # four replays, all kept
    eager = tiny(model_name).cuda().eval()
    eager.load_state_dict(model.state_dict())
    for batch, codes in zip(images.split(32), kept, strict=True):
        torch.testing.assert_close(codes, eager.encode(batch), rtol=1e-3, atol=1e-3)


def test_wae_mmd_penalty_is_lambda_times_the_mmd_to_a_prior_sample():
    model = tiny("wae_mmd", penalty_weight=3.0, prior_sigma=1.5)
    images = torch.rand(16, 1, 28, 28)
    torch.manual_seed(5)
    codes, terms = model.encode_for_loss(images)
    torch.manual_seed(5)
    expected = mmd_imq(codes, model.sample_prior(16), prior_sigma=1.5)
    torch.testing.assert_close(terms["mmd"], expected)
    torch.testing.assert_close(terms["penalty"], 3.0 * expected)


def test_step_decay_divides_by_2_at_30_and_by_5_more_at_50():
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    schedule = step_decay(optimizer, milestones=[30, 50], factors=[0.5, 0.2])
    rates = []
    for _ in range(60):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert rates[29] == pytest.approx(1e-3) and rates[30] == pytest.approx(5e-4)
    assert rates[49] == pytest.approx(5e-4) and rates[50] == pytest.approx(1e-4)
    with pytest.raises(ValueError, match="increasing milestones, one factor each"):
        step_decay(optimizer, milestones=[50, 30], factors=[0.5, 0.2])


@pytest.mark.parametrize("model_name", ["wae_gan", "wae_mmd"])
def test_the_paper_networks_train_a_few_steps_at_reduced_width(model_name, data_dir):
    L.seed_everything(0)
    model = MODELS[model_name](
        image_shape=MNIST_SHAPE,
        n_z=8,
        net=ConvolutionalNetworks(dim_h=8, architecture="paper"),
        penalty_weight=10.0,
    )
    assert model.reconstruct(torch.rand(2, 1, 28, 28)).shape == (2, 1, 28, 28)
    datamodule = MNISTDataModule("mnist", data_dir, batch_size=32, download=False)
    trainer = cpu_trainer(max_epochs=1, limit_train_batches=4, limit_val_batches=1)
    trainer.fit(model, datamodule=datamodule)
    assert torch.isfinite(trainer.callback_metrics["val/loss"])


def test_encoder_pretraining_brings_the_codes_to_the_priors_mean_and_covariance(data_dir):
    L.seed_everything(0)
    datamodule = MNISTDataModule("mnist", data_dir, batch_size=64, download=False)
    images = datamodule.example_images(512, split="train")

    def distance_to_prior(model) -> float:
        model.eval()
        with torch.no_grad():
            codes = model.encode(images)
        return float(codes.mean(0).square().sum() + (codes.T.cov() - torch.eye(8)).square().sum())

    plain = tiny("wae_mmd")
    pretrained = tiny(
        "wae_mmd",
        encoder_pretraining_steps=100,
        optimizer=partial(torch.optim.Adam, lr=1e-3),  # the paper's
    )
    pretrained.load_state_dict(plain.state_dict())
    before = distance_to_prior(plain)
    trainer = cpu_trainer(max_epochs=1, limit_train_batches=1, limit_val_batches=0)
    trainer.fit(pretrained.train(), datamodule=datamodule)
    # 100 pre-training steps, then one training batch
    after = distance_to_prior(pretrained)
    assert after < 0.2 * before, (before, after)


# ---- input noise ---------------------------------------------------------------------------------
def test_input_noise_perturbs_only_what_the_encoder_reads_in_training():
    images = torch.rand(4, *MNIST_SHAPE)
    assert tiny("ae").training_inputs(images) is images  # off by default
    noisy = tiny("ae", input_noise=0.01).training_inputs(images)
    assert (noisy - images).std().item() == pytest.approx(0.01, rel=0.1)


def test_the_wae_mmd_kernel_scales_choose_the_kernels_of_its_penalty():
    x, y = torch.randn(50, 8), torch.randn(60, 8) + 0.5
    single = mmd_imq(x, y, scales=(1.0,))
    c = 2 * 8.0
    k = lambda a, b: c / (c + torch.cdist(a, b).square())  # noqa: E731
    by_hand = (
        (k(x, x).sum() - k(x, x).diagonal().sum()) / (50 * 49)
        + (k(y, y).sum() - k(y, y).diagonal().sum()) / (60 * 59)
        - 2 * k(x, y).mean()
    )
    torch.testing.assert_close(single, by_hand, rtol=1e-4, atol=1e-6)
    assert mmd_imq(x, y) > single  # the default sums seven kernels
    with pytest.raises(ValueError, match="kernel_scales must be positive"):
        tiny("wae_mmd", kernel_scales=[0.0])
