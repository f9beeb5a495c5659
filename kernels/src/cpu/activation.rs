//! Element-wise activations (f32), matching PyTorch's definitions.

use crate::backend::Activation;

/// One activation applied to one value.
#[inline]
pub fn apply(act: Activation, x: f32) -> f32 {
    match act {
        Activation::Gelu => 0.5 * x * (1.0 + libm::erff(x * std::f32::consts::FRAC_1_SQRT_2)),
        Activation::GeluTanh => {
            const C: f32 = 0.797_884_6; // sqrt(2/pi)
            0.5 * x * (1.0 + (C * (x + 0.044_715 * x * x * x)).tanh())
        }
        Activation::QuickGelu => x / (1.0 + (-1.702 * x).exp()),
        Activation::Silu => x / (1.0 + (-x).exp()),
        Activation::Relu => x.max(0.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_torch_values() {
        // torch.nn.functional.gelu(torch.tensor([-3., -1., 0.5, 2.]))
        let want = [-0.004_049_73, -0.158_655_26, 0.345_731_37, 1.954_499_7];
        for (x, w) in [-3f32, -1.0, 0.5, 2.0].iter().zip(want) {
            assert!((apply(Activation::Gelu, *x) - w).abs() < 1e-6, "gelu({x})");
        }
        // gelu(x, approximate='tanh') at 1.0 and silu(1.0)
        assert!((apply(Activation::GeluTanh, 1.0) - 0.841_192).abs() < 1e-6);
        assert!((apply(Activation::Silu, 1.0) - 0.731_058_6).abs() < 1e-6);
        assert!((apply(Activation::QuickGelu, 1.0) - 0.845_795_4).abs() < 1e-6);
        assert_eq!(apply(Activation::Relu, -2.0), 0.0);
    }
}
