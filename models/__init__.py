"""Networks (plain nn.Modules), losses (pure functions) and the GAN models. Never imports options/ or solvers/."""
