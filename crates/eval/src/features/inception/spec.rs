//! Layer table of pytorch-fid's `FIDInceptionV3` (torchvision `Inception3` with 1008 classes,
//! no aux head, FID-patched Mixed blocks): the name, channels, kernel, stride and padding of
//! every `BasicConv2d` (conv without bias + BatchNorm(eps = 1e-3) + ReLU), in state-dict order.

/// Number of classes of the fc layer of the FID Inception weights.
pub const NUM_CLASSES: usize = 1008;
/// Dimension of the pool3 features.
pub const FEATURE_DIM: usize = 2048;
/// BatchNorm epsilon of torchvision's `BasicConv2d`.
pub const BN_EPS: f64 = 1e-3;
/// Input side the images are resized to.
pub const INPUT_SIZE: usize = 299;

/// One `BasicConv2d` layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvSpec {
    /// State-dict prefix, e.g. `Mixed_5b.branch5x5_2`.
    pub name: String,
    pub in_channels: usize,
    pub out_channels: usize,
    /// Kernel `(height, width)`.
    pub kernel: (usize, usize),
    pub stride: usize,
    /// Zero padding `(height, width)`.
    pub padding: (usize, usize),
}

fn conv(
    prefix: &str,
    name: &str,
    cin: usize,
    cout: usize,
    k: (usize, usize),
    s: usize,
    p: (usize, usize),
) -> ConvSpec {
    let name = if prefix.is_empty() { name.to_string() } else { format!("{prefix}.{name}") };
    ConvSpec { name, in_channels: cin, out_channels: cout, kernel: k, stride: s, padding: p }
}

/// InceptionA (`Mixed_5b/c/d`): output `224 + pool_features` channels.
fn block_a(p: &str, cin: usize, pool_features: usize) -> Vec<ConvSpec> {
    vec![
        conv(p, "branch1x1", cin, 64, (1, 1), 1, (0, 0)),
        conv(p, "branch5x5_1", cin, 48, (1, 1), 1, (0, 0)),
        conv(p, "branch5x5_2", 48, 64, (5, 5), 1, (2, 2)),
        conv(p, "branch3x3dbl_1", cin, 64, (1, 1), 1, (0, 0)),
        conv(p, "branch3x3dbl_2", 64, 96, (3, 3), 1, (1, 1)),
        conv(p, "branch3x3dbl_3", 96, 96, (3, 3), 1, (1, 1)),
        conv(p, "branch_pool", cin, pool_features, (1, 1), 1, (0, 0)),
    ]
}

/// InceptionB (`Mixed_6a`): output `384 + 96 + cin` channels at half resolution.
fn block_b(p: &str, cin: usize) -> Vec<ConvSpec> {
    vec![
        conv(p, "branch3x3", cin, 384, (3, 3), 2, (0, 0)),
        conv(p, "branch3x3dbl_1", cin, 64, (1, 1), 1, (0, 0)),
        conv(p, "branch3x3dbl_2", 64, 96, (3, 3), 1, (1, 1)),
        conv(p, "branch3x3dbl_3", 96, 96, (3, 3), 2, (0, 0)),
    ]
}

/// InceptionC (`Mixed_6b..e`): output 768 channels.
fn block_c(p: &str, cin: usize, c7: usize) -> Vec<ConvSpec> {
    vec![
        conv(p, "branch1x1", cin, 192, (1, 1), 1, (0, 0)),
        conv(p, "branch7x7_1", cin, c7, (1, 1), 1, (0, 0)),
        conv(p, "branch7x7_2", c7, c7, (1, 7), 1, (0, 3)),
        conv(p, "branch7x7_3", c7, 192, (7, 1), 1, (3, 0)),
        conv(p, "branch7x7dbl_1", cin, c7, (1, 1), 1, (0, 0)),
        conv(p, "branch7x7dbl_2", c7, c7, (7, 1), 1, (3, 0)),
        conv(p, "branch7x7dbl_3", c7, c7, (1, 7), 1, (0, 3)),
        conv(p, "branch7x7dbl_4", c7, c7, (7, 1), 1, (3, 0)),
        conv(p, "branch7x7dbl_5", c7, 192, (1, 7), 1, (0, 3)),
        conv(p, "branch_pool", cin, 192, (1, 1), 1, (0, 0)),
    ]
}

/// InceptionD (`Mixed_7a`): output `320 + 192 + cin` channels at half resolution.
fn block_d(p: &str, cin: usize) -> Vec<ConvSpec> {
    vec![
        conv(p, "branch3x3_1", cin, 192, (1, 1), 1, (0, 0)),
        conv(p, "branch3x3_2", 192, 320, (3, 3), 2, (0, 0)),
        conv(p, "branch7x7x3_1", cin, 192, (1, 1), 1, (0, 0)),
        conv(p, "branch7x7x3_2", 192, 192, (1, 7), 1, (0, 3)),
        conv(p, "branch7x7x3_3", 192, 192, (7, 1), 1, (3, 0)),
        conv(p, "branch7x7x3_4", 192, 192, (3, 3), 2, (0, 0)),
    ]
}

/// InceptionE (`Mixed_7b/c`): output 2048 channels.
fn block_e(p: &str, cin: usize) -> Vec<ConvSpec> {
    vec![
        conv(p, "branch1x1", cin, 320, (1, 1), 1, (0, 0)),
        conv(p, "branch3x3_1", cin, 384, (1, 1), 1, (0, 0)),
        conv(p, "branch3x3_2a", 384, 384, (1, 3), 1, (0, 1)),
        conv(p, "branch3x3_2b", 384, 384, (3, 1), 1, (1, 0)),
        conv(p, "branch3x3dbl_1", cin, 448, (1, 1), 1, (0, 0)),
        conv(p, "branch3x3dbl_2", 448, 384, (3, 3), 1, (1, 1)),
        conv(p, "branch3x3dbl_3a", 384, 384, (1, 3), 1, (0, 1)),
        conv(p, "branch3x3dbl_3b", 384, 384, (3, 1), 1, (1, 0)),
        conv(p, "branch_pool", cin, 192, (1, 1), 1, (0, 0)),
    ]
}

/// Every `BasicConv2d` of the network, in torchvision's registration (state-dict) order.
pub fn conv_specs() -> Vec<ConvSpec> {
    let mut v = vec![
        conv("", "Conv2d_1a_3x3", 3, 32, (3, 3), 2, (0, 0)),
        conv("", "Conv2d_2a_3x3", 32, 32, (3, 3), 1, (0, 0)),
        conv("", "Conv2d_2b_3x3", 32, 64, (3, 3), 1, (1, 1)),
        conv("", "Conv2d_3b_1x1", 64, 80, (1, 1), 1, (0, 0)),
        conv("", "Conv2d_4a_3x3", 80, 192, (3, 3), 1, (0, 0)),
    ];
    v.extend(block_a("Mixed_5b", 192, 32));
    v.extend(block_a("Mixed_5c", 256, 64));
    v.extend(block_a("Mixed_5d", 288, 64));
    v.extend(block_b("Mixed_6a", 288));
    v.extend(block_c("Mixed_6b", 768, 128));
    v.extend(block_c("Mixed_6c", 768, 160));
    v.extend(block_c("Mixed_6d", 768, 160));
    v.extend(block_c("Mixed_6e", 768, 192));
    v.extend(block_d("Mixed_7a", 768));
    v.extend(block_e("Mixed_7b", 1280));
    v.extend(block_e("Mixed_7c", 2048));
    v
}

/// Whether a parameter is required by the feature path (`fc.*` is optional: without it
/// there are no logits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamRole {
    ConvWeight,
    BnWeight,
    BnBias,
    BnRunningMean,
    BnRunningVar,
    FcWeight,
    FcBias,
}

/// `(state-dict name, shape, role)` of every parameter, in state-dict order
/// (`num_batches_tracked` buffers are not used and therefore not listed).
pub fn parameter_specs() -> Vec<(String, Vec<usize>, ParamRole)> {
    let mut out = Vec::new();
    for c in conv_specs() {
        let o = c.out_channels;
        out.push((
            format!("{}.conv.weight", c.name),
            vec![o, c.in_channels, c.kernel.0, c.kernel.1],
            ParamRole::ConvWeight,
        ));
        out.push((format!("{}.bn.weight", c.name), vec![o], ParamRole::BnWeight));
        out.push((format!("{}.bn.bias", c.name), vec![o], ParamRole::BnBias));
        out.push((format!("{}.bn.running_mean", c.name), vec![o], ParamRole::BnRunningMean));
        out.push((format!("{}.bn.running_var", c.name), vec![o], ParamRole::BnRunningVar));
    }
    out.push(("fc.weight".into(), vec![NUM_CLASSES, FEATURE_DIM], ParamRole::FcWeight));
    out.push(("fc.bias".into(), vec![NUM_CLASSES], ParamRole::FcBias));
    out
}
