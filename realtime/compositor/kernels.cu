// CUDA kernels of the mask compositor. Each reproduces a CPU reference in the Python package:
//   preprocess            engines/preprocess.py           (MediaPipe warp or bilinear resize, [0,1], mean/std, NCHW)
//   mask_from_probability realtime/compositor/masks.py    (bilinear upsample, EMA, threshold, target)
//   row_prefix+dilate     realtime/compositor/masks.py    (disc dilation, OpenCV's MORPH_ELLIPSE rows)
//   feather_h/feather_v   realtime/compositor/masks.py    (box mean, replicated border)
//   box_h_*/box_v_*       realtime/compositor/modes.py    (blur: box mean, reflect-101, uint8 rounding per pass)
//   composite_*           realtime/compositor/modes.py    (out = round(alpha * effect + (1 - alpha) * frame))
// Frames are contiguous uint8 HWC BGR; masks are contiguous uint8 HxW. The alpha the composites read is
// float32 (feathered) or the uint8 0/1 mask itself (alpha_u8 = 1): a byte a pixel, and no pass to widen it.
// Every kernel works on a batch of n frames of one size, contiguous one after another, in one launch:
// blockIdx.z is the frame (pixelate_means: frame * 3 + channel); mask_from_probability instead walks the
// batch in order inside each thread, because a stream's moving average runs from one frame to the next.
// The kernels use no shared memory, barriers, atomics or warp functions: each thread stands alone, which
// lets realtime/compositor/emulator.py run them on the CPU (keep it so, or extend the emulator).
// Compiled at first use with NVRTC (realtime/compositor/cuda.py); every kernel is extern "C".

typedef unsigned char u8;
typedef unsigned short u16;
typedef long long i64;

// Where frame blockIdx.z of a batch starts, for a buffer of `per_frame` elements a frame.
__device__ __forceinline__ size_t frame_offset(size_t per_frame) { return (size_t)blockIdx.z * per_frame; }

// This frame's alpha in a batch of float32 alphas or uint8 masks of H * W pixels each.
__device__ __forceinline__ const void* frame_alpha(const void* alpha, int alpha_u8, int H, int W) {
    size_t offset = frame_offset((size_t)H * W);
    return alpha_u8 ? (const void*)((const u8*)alpha + offset) : (const void*)((const float*)alpha + offset);
}

// The alpha of pixel i: a float32 alpha, or a uint8 0/1 mask (the branch is uniform across the grid).
__device__ __forceinline__ float alpha_at(const void* alpha, int alpha_u8, int i) {
    return alpha_u8 ? (float)((const u8*)alpha)[i] : ((const float*)alpha)[i];
}

__device__ __forceinline__ u8 to_u8(float v) {
    v = fminf(fmaxf(v, 0.0f), 255.0f);
    return (u8)__float2int_rn(v);
}

__device__ __forceinline__ int reflect101(int i, int n) {
    if (n == 1) return 0;
    while (i < 0 || i >= n) {
        if (i < 0) i = -i;
        if (i >= n) i = 2 * n - 2 - i;
    }
    return i;
}

__device__ __forceinline__ int clampi(int i, int lo, int hi) { return i < lo ? lo : (i > hi ? hi : i); }

// Where pixel (x, y) of an H x W output reads an h x w source under OpenCV's INTER_LINEAR (half-pixel
// centres, clamped at the edges): columns x0/x1, rows y0/y1, and the weights fx/fy of x1/y1.
struct LinearTaps {
    int x0, x1, y0, y1;
    float fx, fy;
};

__device__ __forceinline__ LinearTaps linear_taps(int x, int y, int h, int w, int H, int W) {
    float sx = fmaxf((x + 0.5f) * ((float)w / (float)W) - 0.5f, 0.0f);
    float sy = fmaxf((y + 0.5f) * ((float)h / (float)H) - 0.5f, 0.0f);
    LinearTaps t;
    t.x0 = min((int)floorf(sx), w - 1);
    t.y0 = min((int)floorf(sy), h - 1);
    t.x1 = min(t.x0 + 1, w - 1);
    t.y1 = min(t.y0 + 1, h - 1);
    t.fx = t.x0 == w - 1 ? 0.0f : sx - t.x0;
    t.fy = t.y0 == h - 1 ? 0.0f : sy - t.y0;
    return t;
}

// Channel c of a source of `channels` interleaved channels and `w` columns, interpolated at taps t.
template <typename T>
__device__ __forceinline__ float linear_at(const T* src, int w, int channels, int c, LinearTaps t) {
    float top = src[(t.y0 * w + t.x0) * channels + c] * (1.0f - t.fx) + src[(t.y0 * w + t.x1) * channels + c] * t.fx;
    float bottom = src[(t.y1 * w + t.x0) * channels + c] * (1.0f - t.fx) + src[(t.y1 * w + t.x1) * channels + c] * t.fx;
    return top * (1.0f - t.fy) + bottom * t.fy;
}

__device__ __forceinline__ void blend_pixel(const u8* f, const float e0, const float e1, const float e2, float a, u8* o) {
    o[0] = to_u8(a * e0 + (1.0f - a) * f[0]);
    o[1] = to_u8(a * e1 + (1.0f - a) * f[1]);
    o[2] = to_u8(a * e2 + (1.0f - a) * f[2]);
}

// ---------------------------------------------------------------------------------------------
// Preprocessing: uint8 BGR frames -> float32 NCHW model inputs (written at `out`), one frame per blockIdx.z.
// mediapipe=1: x_src = x * W / w (corner-aligned warp), pixels outside the frame count as 0, the
//              warped value is rounded to uint8 first (MediaPipe warps uint8, then scales).
// mediapipe=0: OpenCV INTER_LINEAR resize (half-pixel centres, clamped).
extern "C" __global__ void preprocess(const u8* frame, int H, int W, float* out, int h, int w, int mediapipe,
                                      int swap_rb, float m0, float m1, float m2, float s0, float s1, float s2) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= w || y >= h) return;
    frame += frame_offset((size_t)H * W * 3);
    out += frame_offset((size_t)3 * h * w);
    float sx, sy;
    if (mediapipe) {
        sx = x * ((float)W / (float)w);
        sy = y * ((float)H / (float)h);
    } else {
        sx = fmaxf((x + 0.5f) * ((float)W / (float)w) - 0.5f, 0.0f);
        sy = fmaxf((y + 0.5f) * ((float)H / (float)h) - 0.5f, 0.0f);
    }
    int x0 = (int)floorf(sx), y0 = (int)floorf(sy);
    float fx = sx - x0, fy = sy - y0;
    float mean[3] = {m0, m1, m2}, inv_std[3] = {1.0f / s0, 1.0f / s1, 1.0f / s2};
    for (int k = 0; k < 3; ++k) {
        int c = swap_rb ? 2 - k : k;
        float v = 0.0f;
        for (int dy = 0; dy < 2; ++dy) {
            for (int dx = 0; dx < 2; ++dx) {
                int xx = x0 + dx, yy = y0 + dy;
                float weight = (dx ? fx : 1.0f - fx) * (dy ? fy : 1.0f - fy);
                if (mediapipe) {
                    if (xx < 0 || yy < 0 || xx >= W || yy >= H) continue;  // BORDER_CONSTANT 0
                } else {
                    xx = clampi(xx, 0, W - 1);
                    yy = clampi(yy, 0, H - 1);
                }
                v += weight * frame[(yy * W + xx) * 3 + c];
            }
        }
        float scaled = (float)to_u8(v) * (1.0f / 255.0f);
        out[(k * h + y) * w + x] = (scaled - mean[k]) * inv_std[k];
    }
}

// ---------------------------------------------------------------------------------------------
// Model probabilities (n x h x w) -> frame-size probabilities, moving average, threshold and target.
// Upsampling is OpenCV's INTER_LINEAR (half-pixel centres, clamped). With ema_alpha < 1, `states`
// holds 2n values: the address of frame k's moving average (H x W float32, its stream's; frames of
// one stream share it) and then, for each frame, 1 when that average starts afresh at this frame.
// Each thread takes its pixel through the frames in batch order, so a stream's average runs from
// one frame to its next even within a batch. `probability_out` (may be null) receives the raw
// upsampled probabilities.
extern "C" __global__ void mask_from_probability(const float* prob, int h, int w, int H, int W, int n,
                                                 const i64* states, float ema_alpha, int fail_closed,
                                                 float threshold, int invert, u8* binary, float* probability_out) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= W || y >= H) return;
    LinearTaps taps = linear_taps(x, y, h, w, H, W);
    size_t i = (size_t)y * W + x, pixels = (size_t)H * W;
    for (int k = 0; k < n; ++k) {
        float p = linear_at(prob + (size_t)k * h * w, w, 1, 0, taps);
        if (probability_out) probability_out[k * pixels + i] = p;
        float s = p;
        if (ema_alpha < 1.0f) {
            float* state = (float*)states[k];
            if (!states[n + k]) {
                s = ema_alpha * p + (1.0f - ema_alpha) * state[i];
                // fail-closed: where the newest probability masks more than the average, it wins (NaN: the average)
                if (fail_closed && (invert ? p < s : p > s)) s = p;
            }
            state[i] = s;
        }
        binary[k * pixels + i] = (u8)((!(s < threshold)) != (invert != 0));  // a NaN pixel counts as masked
    }
}

// Row prefix sums of a binary mask: prefix[y * (W + 1) + x] = sum(binary[y, 0:x]). One thread per row.
extern "C" __global__ void row_prefix(const u8* binary, int H, int W, int* prefix) {
    int y = blockIdx.x * blockDim.x + threadIdx.x;
    if (y >= H) return;
    binary += frame_offset((size_t)H * W);
    prefix += frame_offset((size_t)H * (W + 1));
    int sum = 0;
    prefix[y * (W + 1)] = 0;
    for (int x = 0; x < W; ++x) {
        sum += binary[y * W + x];
        prefix[y * (W + 1) + x + 1] = sum;
    }
}

// Dilation by OpenCV's elliptic structuring element of radius r: row dy of the element covers
// columns [-halfwidth[dy + r], +halfwidth[dy + r]] (halfwidth < 0: empty row). Outside the frame
// counts as unmasked (cv2.dilate's default border).
extern "C" __global__ void dilate(const int* prefix, int H, int W, const int* halfwidth, int r, u8* out) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= W || y >= H) return;
    prefix += frame_offset((size_t)H * (W + 1));
    out += frame_offset((size_t)H * W);
    u8 hit = 0;
    for (int dy = -r; dy <= r && !hit; ++dy) {
        int yy = y + dy, half = halfwidth[dy + r];
        if (yy < 0 || yy >= H || half < 0) continue;
        int lo = max(x - half, 0), hi = min(x + half + 1, W);
        hit = prefix[yy * (W + 1) + hi] - prefix[yy * (W + 1) + lo] > 0;
    }
    out[y * W + x] = hit;
}

// Feather: (2f+1) x (2f+1) box mean of the binary mask, replicated border. Horizontal pass...
extern "C" __global__ void feather_h(const u8* binary, int H, int W, int f, float* tmp) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= W || y >= H) return;
    binary += frame_offset((size_t)H * W);
    tmp += frame_offset((size_t)H * W);
    int sum = 0;
    for (int d = -f; d <= f; ++d) sum += binary[y * W + clampi(x + d, 0, W - 1)];
    tmp[y * W + x] = (float)sum;
}

// ... then vertical pass and normalisation.
extern "C" __global__ void feather_v(const float* tmp, int H, int W, int f, float* alpha) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= W || y >= H) return;
    tmp += frame_offset((size_t)H * W);
    alpha += frame_offset((size_t)H * W);
    float sum = 0.0f;
    for (int d = -f; d <= f; ++d) sum += tmp[clampi(y + d, 0, H - 1) * W + x];
    float k = (float)(2 * f + 1);
    alpha[y * W + x] = sum / (k * k);
}

// ---------------------------------------------------------------------------------------------
// Blur: one (2r+1)^2 box-mean pass on a uint8 BGR image, reflect-101 border, split in a horizontal
// integer sum and a vertical sum rounded back to uint8 (run twice for the tent blur). Each thread
// slides its window along `segment` pixels of a row (or a column): two reads a pixel and channel
// instead of 2r+1. Sums are kept as uint16 while (2r+1) * 255 fits (r <= 128), as int32 beyond.
template <typename S>
__device__ __forceinline__ void box_h(const u8* src, int H, int W, int r, int segment, S* sums) {
    int x0 = (blockIdx.x * blockDim.x + threadIdx.x) * segment;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x0 >= W || y >= H) return;
    src += frame_offset((size_t)H * W * 3);
    sums += frame_offset((size_t)H * W * 3);
    const u8* row = src + y * W * 3;
    int s0 = 0, s1 = 0, s2 = 0;
    for (int d = -r; d <= r; ++d) {
        const u8* p = row + reflect101(x0 + d, W) * 3;
        s0 += p[0];
        s1 += p[1];
        s2 += p[2];
    }
    int x1 = min(x0 + segment, W);
    for (int x = x0; x < x1; ++x) {
        S* o = sums + (y * W + x) * 3;
        o[0] = (S)s0;
        o[1] = (S)s1;
        o[2] = (S)s2;
        const u8* enter = row + reflect101(x + r + 1, W) * 3;
        const u8* leave = row + reflect101(x - r, W) * 3;
        s0 += enter[0] - leave[0];
        s1 += enter[1] - leave[1];
        s2 += enter[2] - leave[2];
    }
}

// The vertical pass, rounded to uint8: into `dst`, or (blend = 1) blended straight into `out` with
// the frame and alpha, so the blurred image of the last pass is never written.
template <typename S>
__device__ __forceinline__ void box_v(const S* sums, int H, int W, int r, int segment, u8* dst, int blend,
                                      const u8* frame, const void* alpha, int alpha_u8) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y0 = (blockIdx.y * blockDim.y + threadIdx.y) * segment;
    if (x >= W || y0 >= H) return;
    sums += frame_offset((size_t)H * W * 3);
    dst += frame_offset((size_t)H * W * 3);
    if (blend) {
        frame += frame_offset((size_t)H * W * 3);
        alpha = frame_alpha(alpha, alpha_u8, H, W);
    }
    int s0 = 0, s1 = 0, s2 = 0;
    for (int d = -r; d <= r; ++d) {
        const S* p = sums + (reflect101(y0 + d, H) * W + x) * 3;
        s0 += p[0];
        s1 += p[1];
        s2 += p[2];
    }
    float scale = 1.0f / (float)((2 * r + 1) * (2 * r + 1));
    int y1 = min(y0 + segment, H);
    for (int y = y0; y < y1; ++y) {
        int i = y * W + x;
        u8 b0 = to_u8(s0 * scale), b1 = to_u8(s1 * scale), b2 = to_u8(s2 * scale);
        if (blend) {
            blend_pixel(frame + i * 3, b0, b1, b2, alpha_at(alpha, alpha_u8, i), dst + i * 3);
        } else {
            dst[i * 3 + 0] = b0;
            dst[i * 3 + 1] = b1;
            dst[i * 3 + 2] = b2;
        }
        const S* enter = sums + (reflect101(y + r + 1, H) * W + x) * 3;
        const S* leave = sums + (reflect101(y - r, H) * W + x) * 3;
        s0 += enter[0] - leave[0];
        s1 += enter[1] - leave[1];
        s2 += enter[2] - leave[2];
    }
}

extern "C" __global__ void box_h_u16(const u8* src, int H, int W, int r, int segment, u16* sums) {
    box_h(src, H, W, r, segment, sums);
}

extern "C" __global__ void box_h_i32(const u8* src, int H, int W, int r, int segment, int* sums) {
    box_h(src, H, W, r, segment, sums);
}

extern "C" __global__ void box_v_u16(const u16* sums, int H, int W, int r, int segment, u8* dst, int blend,
                                     const u8* frame, const void* alpha, int alpha_u8) {
    box_v(sums, H, W, r, segment, dst, blend, frame, alpha, alpha_u8);
}

extern "C" __global__ void box_v_i32(const int* sums, int H, int W, int r, int segment, u8* dst, int blend,
                                     const u8* frame, const void* alpha, int alpha_u8) {
    box_v(sums, H, W, r, segment, dst, blend, frame, alpha, alpha_u8);
}

// ---------------------------------------------------------------------------------------------
// Composites: the frame is read once and the output written once.

// An effect image of the frame's size (a resized background).
// One effect image for the whole batch, or (effect_per_frame = 1) one a frame.
extern "C" __global__ void composite_image(const u8* frame, const u8* effect, int effect_per_frame, const void* alpha,
                                           int alpha_u8, int H, int W, u8* out) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= H * W) return;
    size_t offset = frame_offset((size_t)H * W * 3);
    frame += offset;
    out += offset;
    alpha = frame_alpha(alpha, alpha_u8, H, W);
    const u8* e = effect + (effect_per_frame ? offset : 0) + i * 3;
    blend_pixel(frame + i * 3, e[0], e[1], e[2], alpha_at(alpha, alpha_u8, i), out + i * 3);
}

// fill (opacity = 1) and overlay (tint = round((1 - opacity) * frame + opacity * colour)).
extern "C" __global__ void composite_color(const u8* frame, const void* alpha, int alpha_u8, int H, int W, float c0,
                                          float c1, float c2, float opacity, u8* out) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= H * W) return;
    frame += frame_offset((size_t)H * W * 3);
    out += frame_offset((size_t)H * W * 3);
    alpha = frame_alpha(alpha, alpha_u8, H, W);
    const u8* f = frame + i * 3;
    float e0 = c0, e1 = c1, e2 = c2;
    if (opacity < 1.0f) {
        e0 = (float)to_u8((1.0f - opacity) * f[0] + opacity * c0);
        e1 = (float)to_u8((1.0f - opacity) * f[1] + opacity * c1);
        e2 = (float)to_u8((1.0f - opacity) * f[2] + opacity * c2);
    }
    blend_pixel(f, e0, e1, e2, alpha_at(alpha, alpha_u8, i), out + i * 3);
}

// Pixelate, step 1: the mean of each B x B block (partial blocks at the right/bottom edges),
// floor(sum / count + 0.5). One thread per block and channel; blockIdx.z = frame * 3 + channel.
extern "C" __global__ void pixelate_means(const u8* frame, int H, int W, int block, u8* means, int blocks_w, int blocks_h) {
    int bx = blockIdx.x * blockDim.x + threadIdx.x;
    int by = blockIdx.y * blockDim.y + threadIdx.y;
    int c = blockIdx.z % 3;
    size_t f = blockIdx.z / 3;
    if (bx >= blocks_w || by >= blocks_h) return;
    frame += f * H * W * 3;
    means += f * blocks_h * blocks_w * 3;
    int x0 = bx * block, y0 = by * block, x1 = min(x0 + block, W), y1 = min(y0 + block, H);
    unsigned int sum = 0;
    for (int y = y0; y < y1; ++y)
        for (int x = x0; x < x1; ++x) sum += frame[(y * W + x) * 3 + c];
    unsigned int count = (unsigned int)((x1 - x0) * (y1 - y0));
    means[(by * blocks_w + bx) * 3 + c] = (u8)((2 * sum + count) / (2 * count));
}

// Pixelate, step 2: blend each pixel with its block's mean.
extern "C" __global__ void composite_pixelate(const u8* frame, const u8* means, int blocks_w, int block,
                                             const void* alpha, int alpha_u8, int H, int W, u8* out) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= H * W) return;
    int blocks_h = (H + block - 1) / block;
    frame += frame_offset((size_t)H * W * 3);
    out += frame_offset((size_t)H * W * 3);
    means += frame_offset((size_t)blocks_h * blocks_w * 3);
    alpha = frame_alpha(alpha, alpha_u8, H, W);
    int y = i / W, x = i - y * W;
    const u8* m = means + ((y / block) * blocks_w + x / block) * 3;
    blend_pixel(frame + i * 3, m[0], m[1], m[2], alpha_at(alpha, alpha_u8, i), out + i * 3);
}

// Cutout (bgra): the frame plus an alpha channel round(255 * (1 - alpha)).
extern "C" __global__ void cutout_bgra(const u8* frame, const void* alpha, int alpha_u8, int H, int W, u8* out) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= H * W) return;
    frame += frame_offset((size_t)H * W * 3);
    out += frame_offset((size_t)H * W * 4);
    alpha = frame_alpha(alpha, alpha_u8, H, W);
    out[i * 4 + 0] = frame[i * 3 + 0];
    out[i * 4 + 1] = frame[i * 3 + 1];
    out[i * 4 + 2] = frame[i * 3 + 2];
    out[i * 4 + 3] = to_u8(255.0f * (1.0f - alpha_at(alpha, alpha_u8, i)));
}

// Mask: the alpha as a grey BGR image.
extern "C" __global__ void mask_grey(const void* alpha, int alpha_u8, int H, int W, u8* out) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= H * W) return;
    out += frame_offset((size_t)H * W * 3);
    alpha = frame_alpha(alpha, alpha_u8, H, W);
    u8 v = to_u8(255.0f * alpha_at(alpha, alpha_u8, i));
    out[i * 3 + 0] = v;
    out[i * 3 + 1] = v;
    out[i * 3 + 2] = v;
}

// Replace: a background resized to the frame with OpenCV's INTER_LINEAR (half-pixel, clamped).
extern "C" __global__ void resize_u8(const u8* src, int sh, int sw, u8* dst, int H, int W) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= W || y >= H) return;
    LinearTaps taps = linear_taps(x, y, sh, sw, H, W);
    for (int c = 0; c < 3; ++c) dst[(y * W + x) * 3 + c] = to_u8(linear_at(src, sw, 3, c, taps));
}
