/* A float32 linear layer from integer and bfloat16 products, for `--dtype mixed`, in two builds:
   on Intel's AMX tiles where the CPU has them (built with -mamx-*), else with AVX-512's VNNI dot
   products (AMD Zen 4 and 5, Intel Cascade Lake and later).

   out[rows, columns] = x[rows, inner] @ W.T, with x and W float32, accumulated and returned in
   float32, which PyTorch's own bfloat16 products on the CPU do not offer (they round their output
   to bfloat16). Every scale below is a power of two, so every rescaling is exact.

   The tiles (bfloat16 and int8). W is rounded to bfloat16 once. Each row of x is split into a
   bfloat16 head and the remainder the head could not hold. The head is multiplied by W in
   bfloat16. The remainder is at most half a unit in the head's last place, 2**-8 of the input, so
   its product needs only a few significant bits: it is carried in int8, each row with a scale
   (its largest value lands above 63.5 and at most 127), and multiplied in int8, which does twice
   bfloat16's work per instruction, by an int8 copy of W with a scale per column. Rounding the
   remainder to int8 moves each value by less than 2**-8 / 127 (about 2**-15) of its row's largest
   input, where a bfloat16 input alone is off by up to 2**-8 of its own size; the int8 weights are
   within 1/127 of their column's largest. So a product costs 1.5 bfloat16 products.

   AVX-512 (int16). Without tiles, bfloat16 and int16 dot products (vdpbf16ps, vpdpwssd) do the
   same work per instruction, so one int16 product replaces the split: each group of 64 inputs of
   a row is held in int16 steps of its own scale (at most 8191: 13 bits of the group's largest
   value), and each column of W in int16 steps of its own (at most 4095, from float32: W is not
   rounded to bfloat16 first). A group's dot products are exact in int32 (8191 * 4095 * 64 < 2**31)
   and join the float32 sum times the group's scale. On the values study this keeps option
   distributions closer to float32 than the tiles' split with its bfloat16 weights does (0.0040
   against 0.0049 bits at most on 200 prompts) at the cost of one product instead of 1.5.

   W is packed once, by pack_weight (bfloat16) or pack_weight_int16, into the layout a B tile
   reads: groups of 16 columns, each a run of `inner / 2` rows of 16 column pairs (pairs along
   `inner`, "VNNI"); and by pack_weight_int8 into groups of 16 columns of `depth / 4` rows of 16
   column quadruples, with `depth` the inner dimension padded with zeros to a multiple of 64. On
   the tiles each output block of 32 x 32 is four 16 x 16 accumulator tiles fed by two A tiles
   (16 rows x 64 bytes) and two B tiles per step: 32 inner values for the head, 64 for the
   remainder. With AVX-512 one row of that layout is one vector of 16 columns' int16 pairs, met
   by a broadcast pair of an input row: 8 rows x 32 columns of int32 accumulators a step.

   The rows are cut into bands (their split or int16 steps fit a thread's scratch, which stays in
   the core's cache while every column pair passes over it); the bands, and for few rows the
   column pairs too, are shared among the OpenMP threads, which are PyTorch's own when this
   library is loaded after torch.

   For whole decoder layers (culture_probe.engine.fused) the same pass folds in the float32 work
   next to a product: an RMSNorm of each input row before it is split, a residual sum or a SwiGLU
   gate as each output block is written; rotary_embedding rotates q and k in place. They compute
   what PyTorch's separate operations compute, in the same order of roundings, except the norm's
   sum of squares (another order) and SiLU's exponential (Cephes' polynomial). tree_attention
   is the attention between them, over a packed prefix tree, in float32.

   Built at run time by culture_probe.engine.split_kernel with -march=native -fopenmp
   -ffp-contract=off (no fused multiply-adds but the ones written out), and -mamx-tile -mamx-bf16
   -mamx-int8 for the tiles. */

#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define BLOCK 32

#ifdef __AMX_TILE__
#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18

typedef struct {
    uint8_t palette_id;
    uint8_t start_row;
    uint8_t reserved[14];
    uint16_t bytes_per_row[16];
    uint8_t rows[16];
} tile_config;

/* Linux hands AMX's tile state to a process only when asked; 0 when granted. */
int amx_request(void) {
    return (int)syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA);
}
#else
/* AVX-512: both operands in int16 (vpdpwssd). An input row is cut into groups of GROUP values,
   each with its own power-of-two scale, and a weight column has one. Inputs are held in at most
   INPUT_LEVELS steps each side of zero and weights in WEIGHT_LEVELS, so a group's dot products
   sum to at most 8191 * 4095 * 64 < 2**31 in int32, exactly, before they join the float32 sum. */
#define GROUP 64
#define INPUT_LEVELS 8191.0f
#define WEIGHT_LEVELS 4095.0f

/* no tiles to ask for */
int amx_request(void) { return 0; }
#endif

static inline float from_bfloat16(uint16_t value) {
    uint32_t bits = (uint32_t)value << 16;
    float result;
    memcpy(&result, &bits, sizeof result);
    return result;
}

/* the inner dimension of the int8 layout: `inner` padded with zeros to a step of 64 */
int64_t int8_depth(int64_t inner) { return (inner + 63) / 64 * 64; }

/* the smallest power of two `scale` with largest / scale <= levels; 0 when every value is
   (nearly) zero, which would leave no finite inverse */
static inline float power_of_two_scale(float largest, float levels) {
    if (!(largest > 0x1p-100f)) return 0.0f;
    int exponent;
    float mantissa = frexpf(largest / levels, &exponent); /* in [0.5, 1) */
    return ldexpf(1.0f, mantissa == 0.5f ? exponent - 1 : exponent);
}

/* where W[column][k] goes in a B tile's layout [columns / 16][depth / width][16][width]: groups
   of 16 columns, each a run of rows of 16 columns' `width` consecutive inner values */
static inline int64_t packed_index(int64_t column, int64_t k, int64_t depth, int64_t width) {
    int64_t row = column / 16 * (depth / width) + k / width;
    return (row * 16 + column % 16) * width + k % width;
}

/* weight [columns, inner] bfloat16, row-major -> packed [columns / 16][inner / 2][16][2] */
void pack_weight(const uint16_t *weight, int64_t columns, int64_t inner, uint16_t *packed) {
    for (int64_t column = 0; column < columns; ++column)
        for (int64_t k = 0; k < inner; ++k)
            packed[packed_index(column, k, inner, 2)] = weight[column * inner + k];
}

#ifdef __AMX_TILE__
/* weight [columns, inner] bfloat16 -> packed [columns / 16][depth / 4][16][4] int8 and a
   power-of-two scale per column: weight ~ packed * scale */
void pack_weight_int8(const uint16_t *weight, int64_t columns, int64_t inner, int8_t *packed,
                      float *scales) {
    int64_t depth = int8_depth(inner);
    memset(packed, 0, columns * depth);
    for (int64_t column = 0; column < columns; ++column) {
        const uint16_t *values = weight + column * inner;
        float largest = 0.0f;
        for (int64_t k = 0; k < inner; ++k)
            largest = fmaxf(largest, fabsf(from_bfloat16(values[k])));
        float scale = power_of_two_scale(largest, 127.0f);
        float inverse = scale > 0.0f ? 1.0f / scale : 0.0f;
        scales[column] = scale;
        for (int64_t k = 0; k < inner; ++k)
            packed[packed_index(column, k, depth, 4)] =
                (int8_t)nearbyintf(from_bfloat16(values[k]) * inverse);
    }
}

static void configure_tiles(void) {
    tile_config config;
    memset(&config, 0, sizeof config);
    config.palette_id = 1;
    for (int tile = 0; tile < 8; ++tile) {
        config.rows[tile] = 16;
        config.bytes_per_row[tile] = 64;
    }
    _tile_loadconfig(&config);
}
#endif

/* 16 inputs of a row, RMS-normalised first where `norm` is given: (x * factor) * norm, in the
   order of transformers' RMSNorm, each product rounded to float32 */
static inline __m512 input16(const float *x, const float *norm, __m512 factor) {
    __m512 value = _mm512_loadu_ps(x);
    if (!norm) return value;
    return _mm512_mul_ps(_mm512_mul_ps(value, factor), _mm512_loadu_ps(norm));
}

/* RMSNorm's factor for a row: 1 / sqrt(mean(x^2) + eps) */
static inline float norm_factor(const float *row, int64_t inner, float eps) {
    __m512 squares = _mm512_setzero_ps();
    for (int64_t k = 0; k < inner; k += 16) {
        __m512 value = _mm512_loadu_ps(row + k);
        squares = _mm512_fmadd_ps(value, value, squares);
    }
    return 1.0f / sqrtf(_mm512_reduce_add_ps(squares) / (float)inner + eps);
}

#ifdef __AMX_TILE__
/* where a thread keeps a band of rows of x, split */
typedef struct {
    uint16_t *head;     /* [band][inner] bfloat16 */
    int8_t *rest;       /* [band][depth] int8 */
    float *rest_scales; /* [band] */
} split_band;

/* 16 values: their bfloat16 head (rounded to nearest, ties to even) and the remainder */
static inline __m512 split16(__m512 value, uint16_t *head) {
    __m256i top = (__m256i)_mm512_cvtneps_pbh(value);
    _mm256_storeu_si256((__m256i *)head, top);
    __m512 back = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(top), 16));
    return _mm512_sub_ps(value, back); /* exact in float32 */
}

/* rows [first, first + count) of x (RMS-normalised where `norm` is given) as head and int8
   remainder, zero rows up to `padded`; two passes over each row (in the core's cache): the first
   finds the remainder's scale */
static void split_rows(const float *x, int64_t first, int64_t count, int64_t padded,
                       int64_t inner, int64_t depth, const float *norm, float eps,
                       split_band band) {
    for (int64_t r = 0; r < padded; ++r) {
        uint16_t *h = band.head + r * inner;
        int8_t *l = band.rest + r * depth;
        memset(l + inner, 0, depth - inner);
        if (r >= count) {
            memset(h, 0, inner * sizeof *h);
            memset(l, 0, inner);
            band.rest_scales[r] = 0.0f;
            continue;
        }
        const float *row = x + (first + r) * inner;
        __m512 factor = _mm512_set1_ps(norm ? norm_factor(row, inner, eps) : 1.0f);
        __m512 largest = _mm512_setzero_ps();
        for (int64_t k = 0; k < inner; k += 16) {
            __m512 rest = split16(input16(row + k, norm ? norm + k : NULL, factor), h + k);
            largest = _mm512_max_ps(largest, _mm512_abs_ps(rest));
        }
        float scale = power_of_two_scale(_mm512_reduce_max_ps(largest), 127.0f);
        __m512 inverse = _mm512_set1_ps(scale > 0.0f ? 1.0f / scale : 0.0f);
        for (int64_t k = 0; k < inner; k += 16) {
            __m512 rest = split16(input16(row + k, norm ? norm + k : NULL, factor), h + k);
            /* to the nearest integer (the default rounding mode), at most 127 in size */
            __m512i steps = _mm512_cvtps_epi32(_mm512_mul_ps(rest, inverse));
            _mm_storeu_si128((__m128i *)(l + k), _mm512_cvtsepi32_epi8(steps));
        }
        band.rest_scales[r] = scale;
    }
}

/* tiles 0-3 = the 32 x 32 block of head @ columns b0 | b1, float32 */
static void head_product(const uint16_t *head, int64_t inner, const uint16_t *b0,
                         const uint16_t *b1) {
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    for (int64_t k = 0; k < inner; k += 32) {
        _tile_loadd(4, head + k, inner * 2);
        _tile_loadd(6, b0 + k * 16, 64);
        _tile_loadd(5, head + 16 * inner + k, inner * 2);
        _tile_loadd(7, b1 + k * 16, 64);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
    }
}

/* tiles 0-3 = the 32 x 32 block of rest @ int8 columns c0 | c1, int32 */
static void rest_product(const int8_t *rest, int64_t depth, const int8_t *c0, const int8_t *c1) {
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    for (int64_t k = 0; k < depth; k += 64) {
        _tile_loadd(4, rest + k, depth);
        _tile_loadd(6, c0 + k * 16, 64);
        _tile_loadd(5, rest + 16 * depth + k, depth);
        _tile_loadd(7, c1 + k * 16, 64);
        _tile_dpbssd(0, 4, 6);
        _tile_dpbssd(1, 4, 7);
        _tile_dpbssd(2, 5, 6);
        _tile_dpbssd(3, 5, 7);
    }
}

/* tiles 0-3 to a 32 x 32 block at `block`, rows `stride` bytes apart */
static void store_tiles(void *block, int64_t stride) {
    char *base = block;
    _tile_stored(0, base, stride);
    _tile_stored(1, base + 64, stride);
    _tile_stored(2, base + 16 * stride, stride);
    _tile_stored(3, base + 16 * stride + 64, stride);
}

/* the 32 x 32 block of head @ columns b0 | b1 into `values` (float32, rows `stride` floats
   apart), and of rest @ int8 columns c0 | c1 into `sums` */
static void block_products(const uint16_t *head, int64_t inner, const uint16_t *b0,
                           const uint16_t *b1, const int8_t *rest, int64_t depth,
                           const int8_t *c0, const int8_t *c1, float *values, int64_t stride,
                           int32_t *sums) {
    head_product(head, inner, b0, b1);
    store_tiles(values, stride * 4);
    rest_product(rest, depth, c0, c1);
    store_tiles(sums, BLOCK * 4);
}

/* block[r][c] += sums[r][c] * row_scales[r] * column_scales[c]; the scales are powers of two, so
   the only rounding is the sum's (and the int32's conversion above 2**24) */
static void add_rest(float *block, int64_t stride, const int32_t *sums, const float *row_scales,
                     const float *column_scales) {
    __m512 left = _mm512_loadu_ps(column_scales), right = _mm512_loadu_ps(column_scales + 16);
    for (int r = 0; r < BLOCK; ++r) {
        __m512 row_scale = _mm512_set1_ps(row_scales[r]);
        float *target = block + r * stride;
        const int32_t *sum = sums + r * BLOCK;
        __m512 a = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_loadu_si512(sum)), row_scale);
        __m512 b = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_loadu_si512(sum + 16)), row_scale);
        _mm512_storeu_ps(target, _mm512_fmadd_ps(a, left, _mm512_loadu_ps(target)));
        _mm512_storeu_ps(target + 16, _mm512_fmadd_ps(b, right, _mm512_loadu_ps(target + 16)));
    }
}

typedef split_band kernel_band;

static int64_t band_row_bytes(int64_t inner) { return 2 * inner + int8_depth(inner) + 4; }

static kernel_band band_in(char *memory, int64_t band_rows, int64_t inner) {
    split_band band = {(uint16_t *)memory, (int8_t *)(memory + band_rows * 2 * inner),
                       (float *)(memory + band_rows * (2 * inner + int8_depth(inner)))};
    return band;
}

static void prepare_band(const float *x, int64_t first, int64_t count, int64_t padded,
                         int64_t inner, const float *norm, float eps, kernel_band band) {
    split_rows(x, first, count, padded, inner, int8_depth(inner), norm, eps, band);
}

/* the weight's 32-column block `unit` (two 16-column groups of bfloat16 pairs and of int8
   quadruples) at band row r: head plus remainder, into `values`, rows `stride` floats apart */
static void unit_product(const kernel_band *band, int64_t r, int64_t inner,
                         const uint16_t *packed, const int8_t *packed_int8,
                         const float *column_scales, int64_t unit, float *values, int64_t stride,
                         int32_t *sums) {
    int64_t depth = int8_depth(inner);
    const uint16_t *b = packed + unit * 32 * inner;
    const int8_t *c = packed_int8 + unit * 32 * depth;
    block_products(band->head + r * inner, inner, b, b + 16 * inner, band->rest + r * depth,
                   depth, c, c + 16 * depth, values, stride, sums);
    add_rest(values, stride, sums, band->rest_scales + r, column_scales + unit * BLOCK);
}

#else

/* weight [columns, inner] float32, row-major -> packed [columns / 16][inner / 2][16][2] int16,
   the layout of pack_weight, and a power-of-two scale per column: weight ~ packed * scale */
void pack_weight_int16(const float *weight, int64_t columns, int64_t inner, int16_t *packed,
                       float *scales) {
    for (int64_t column = 0; column < columns; ++column) {
        const float *values = weight + column * inner;
        float largest = 0.0f;
        for (int64_t k = 0; k < inner; ++k) largest = fmaxf(largest, fabsf(values[k]));
        float scale = power_of_two_scale(largest, WEIGHT_LEVELS);
        float inverse = scale > 0.0f ? 1.0f / scale : 0.0f;
        scales[column] = scale;
        for (int64_t k = 0; k < inner; ++k)
            packed[packed_index(column, k, inner, 2)] = (int16_t)nearbyintf(values[k] * inverse);
    }
}

/* where a thread keeps a band of rows of x, in int16 */
typedef struct {
    int16_t *steps; /* [band][inner] */
    float *scales;  /* [band][groups]: each group's power of two */
} kernel_band;

static inline int64_t group_count(int64_t inner) { return (inner + GROUP - 1) / GROUP; }

static int64_t band_row_bytes(int64_t inner) { return 2 * inner + 4 * group_count(inner); }

static kernel_band band_in(char *memory, int64_t band_rows, int64_t inner) {
    kernel_band band = {(int16_t *)memory, (float *)(memory + band_rows * 2 * inner)};
    return band;
}

/* rows [first, first + count) of x (RMS-normalised where `norm` is given) in int16, each group
   of GROUP values scaled by its own power of two, zero rows up to `padded` */
static void prepare_band(const float *x, int64_t first, int64_t count, int64_t padded,
                         int64_t inner, const float *norm, float eps, kernel_band band) {
    int64_t groups = group_count(inner);
    for (int64_t r = 0; r < padded; ++r) {
        int16_t *steps = band.steps + r * inner;
        float *scales = band.scales + r * groups;
        if (r >= count) {
            memset(steps, 0, inner * sizeof *steps);
            memset(scales, 0, groups * sizeof *scales);
            continue;
        }
        const float *row = x + (first + r) * inner;
        __m512 factor = _mm512_set1_ps(norm ? norm_factor(row, inner, eps) : 1.0f);
        for (int64_t g = 0; g < groups; ++g) {
            int64_t start = g * GROUP, width = inner - start < GROUP ? inner - start : GROUP;
            __m512 values[GROUP / 16];
            __m512 largest = _mm512_setzero_ps();
            for (int64_t v = 0; v < width / 16; ++v) {
                int64_t k = start + 16 * v;
                values[v] = input16(row + k, norm ? norm + k : NULL, factor);
                largest = _mm512_max_ps(largest, _mm512_abs_ps(values[v]));
            }
            float scale = power_of_two_scale(_mm512_reduce_max_ps(largest), INPUT_LEVELS);
            __m512 inverse = _mm512_set1_ps(scale > 0.0f ? 1.0f / scale : 0.0f);
            for (int64_t v = 0; v < width / 16; ++v) {
                /* to the nearest integer (the default rounding mode), at most INPUT_LEVELS */
                __m512i rounded = _mm512_cvtps_epi32(_mm512_mul_ps(values[v], inverse));
                _mm256_storeu_si256((__m256i *)(steps + start + 16 * v),
                                    _mm512_cvtsepi32_epi16(rounded));
            }
            scales[g] = scale;
        }
    }
}

/* rows of the block each step holds: 8 rows x 32 columns are 16 int32 accumulators, and each
   step along the inner dimension loads two vectors of weights for 16 dot-product instructions */
#define STEP_ROWS 8

/* sum += pairwise dot products of x and w; written out so that each accumulator stays in its
   register: GCC 12 copies the accumulator of _mm512_dpwssd_epi32 through a spare register at
   every call */
static inline __m512i dot_pairs(__m512i sum, __m512i x, __m512i w) {
    __asm__("vpdpwssd %2, %1, %0" : "+v"(sum) : "v"(x), "v"(w));
    return sum;
}

/* one group's exact int32 dot products for STEP_ROWS rows of `a` (rows `inner` apart) and
   columns b0 | b1 (16 columns' int16 pairs a vector, each met by a broadcast pair of a row's
   inputs), added in float32, times each row's group scale, to the rows of `values` (`stride`
   floats apart; `first`: set them instead); `last`: then times the columns' scales */
static inline void group_product(const int16_t *a, int64_t inner, int64_t start, int64_t end,
                                 const int16_t *b0, const int16_t *b1, const float *row_scales,
                                 int64_t groups, int first, int last, __m512 scale0,
                                 __m512 scale1, float *values, int64_t stride) {
    __m512i sum0[STEP_ROWS], sum1[STEP_ROWS];
    for (int i = 0; i < STEP_ROWS; ++i) sum0[i] = sum1[i] = _mm512_setzero_si512();
    for (int64_t k = start; k < end; k += 2) {
        __m512i w0 = _mm512_loadu_si512(b0 + k * 16);
        __m512i w1 = _mm512_loadu_si512(b1 + k * 16);
        for (int i = 0; i < STEP_ROWS; ++i) {
            int32_t pair;
            memcpy(&pair, a + i * inner + k, sizeof pair);
            __m512i x = _mm512_set1_epi32(pair);
            sum0[i] = dot_pairs(sum0[i], x, w0);
            sum1[i] = dot_pairs(sum1[i], x, w1);
        }
    }
    for (int i = 0; i < STEP_ROWS; ++i) {
        __m512 scale = _mm512_set1_ps(row_scales[i * groups]);
        float *row = values + i * stride;
        __m512 left = first ? _mm512_setzero_ps() : _mm512_loadu_ps(row);
        __m512 right = first ? _mm512_setzero_ps() : _mm512_loadu_ps(row + 16);
        left = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum0[i]), scale, left);
        right = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum1[i]), scale, right);
        if (last) {
            left = _mm512_mul_ps(left, scale0);
            right = _mm512_mul_ps(right, scale1);
        }
        _mm512_storeu_ps(row, left);
        _mm512_storeu_ps(row + 16, right);
    }
}

/* the 32 x 32 block of x @ W.T at band row r and columns b0 | b1 into `values`, rows `stride`
   floats apart: each group's exact int32 sums, times the row's group scale, added up in float32,
   then times the columns' scales (powers of two, exact) */
static void block_product(const kernel_band *band, int64_t r, int64_t inner, const int16_t *b0,
                          const int16_t *b1, const float *column_scales, float *values,
                          int64_t stride) {
    int64_t groups = group_count(inner);
    __m512 scale0 = _mm512_loadu_ps(column_scales), scale1 = _mm512_loadu_ps(column_scales + 16);
    for (int r0 = 0; r0 < BLOCK; r0 += STEP_ROWS) {
        const int16_t *a = band->steps + (r + r0) * inner;
        const float *row_scales = band->scales + (r + r0) * groups;
        for (int64_t g = 0; g < groups; ++g) {
            int64_t start = g * GROUP, end = start + GROUP < inner ? start + GROUP : inner;
            group_product(a, inner, start, end, b0, b1, row_scales + g, groups, g == 0,
                          g == groups - 1, scale0, scale1, values + r0 * stride, stride);
        }
    }
}

/* the weight's 32-column block `unit`, from its int16 layout (the other layouts are unused) */
static void unit_product(const kernel_band *band, int64_t r, int64_t inner,
                         const uint16_t *packed, const int8_t *packed_int8,
                         const float *column_scales, int64_t unit, float *values,
                         int64_t stride, int32_t *sums) {
    (void)packed_int8, (void)sums;
    const int16_t *b = (const int16_t *)packed + unit * 32 * inner;
    block_product(band, r, inner, b, b + 16 * inner, column_scales + unit * BLOCK, values,
                  stride);
}

#endif

/* e^x for 16 values, to within a few units in the last place: Cephes' expf (ln 2 in two parts
   for the range reduction, a degree-6 polynomial), scaled by 2^n with scalef, which gives 0 and
   infinity beyond float32's range */
static inline __m512 exp16(__m512 x) {
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-104.0f)), _mm512_set1_ps(89.0f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

/* the first `count` rows of a 32-wide block of values to `out`, rows `stride` floats apart:
   as they are, added to `residual` (laid out as out; it may be out itself), or, with `up`,
   as silu(values) * up, SiLU computed as x / (1 + e^-x), the way PyTorch does */
static void write_block(float *out, int64_t stride, const float *values, const float *residual,
                        const float *up, int64_t count) {
    __m512 one = _mm512_set1_ps(1.0f), sign = _mm512_set1_ps(-0.0f);
    for (int64_t r = 0; r < count; ++r)
        for (int half = 0; half < BLOCK; half += 16) {
            __m512 value = _mm512_loadu_ps(values + r * BLOCK + half);
            if (up) {
                __m512 decay = exp16(_mm512_xor_ps(value, sign));
                value = _mm512_div_ps(value, _mm512_add_ps(one, decay));
                value = _mm512_mul_ps(value, _mm512_loadu_ps(up + r * BLOCK + half));
            } else if (residual) {
                value = _mm512_add_ps(_mm512_loadu_ps(residual + r * stride + half), value);
            }
            _mm512_storeu_ps(out + r * stride + half, value);
        }
}

/* out = x @ W.T as described above; inner and columns multiples of 32, W packed by pack_weight
   and pack_weight_int8 (tiles) or pack_weight_int16 (AVX-512; packed_int8 unused).
   scratch_bytes: how much of x's prepared rows a thread holds at once.
   Folded in where asked (NULL / 0 for a plain product):
     norm, eps: each row of x is RMS-normalised first, (x / sqrt(mean(x^2) + eps)) * norm;
     residual: out = residual + x @ W.T, residual [rows, columns] (it may be out itself);
     gated: W holds two halves of columns, gate and up (columns a multiple of 64), and out
       [rows, columns / 2] = silu(x @ gate.T) * (x @ up.T), a SwiGLU layer's activation.
   Returns 0, or -1 when the threads' scratch could not be allocated (out is then untouched). */
int split_product(const float *x, int64_t rows, int64_t inner, const uint16_t *packed,
                  const int8_t *packed_int8, const float *column_scales, int64_t columns,
                  int64_t scratch_bytes, const float *norm, float eps, const float *residual,
                  int gated, float *out) {
    int64_t threads = omp_get_max_threads();
    int64_t row_bytes = band_row_bytes(inner);
    int64_t blocks = (rows + BLOCK - 1) / BLOCK;
    int64_t widest = scratch_bytes / row_bytes / BLOCK;
    if (widest < 1) widest = 1;
    /* as many bands as the scratch needs, rounded up to a multiple of the threads */
    int64_t bands = (blocks + widest - 1) / widest;
    bands = (bands + threads - 1) / threads * threads;
    if (bands > blocks) bands = blocks;
    int64_t band_rows = (blocks + bands - 1) / bands * BLOCK;
    bands = (rows + band_rows - 1) / band_rows;
    /* the output's 32-column blocks: one column pair of W each, or, gated, a gate and an up pair */
    int64_t pairs = columns / BLOCK;
    int64_t units = gated ? pairs / 2 : pairs;
    int64_t width = gated ? columns / 2 : columns;
    /* fewer bands than threads: the threads also share out the output's column blocks */
    int64_t parts = bands >= threads ? 1 : (threads + bands - 1) / bands;
    if (parts > units) parts = units;
    int64_t scratch = (band_rows * row_bytes + 63) / 64 * 64;
    char *scratches = aligned_alloc(64, threads * scratch);
    if (!scratches) return -1;
#pragma omp parallel num_threads(threads)
    {
        kernel_band band = band_in(scratches + omp_get_thread_num() * scratch, band_rows, inner);
        float values[BLOCK * BLOCK], up[BLOCK * BLOCK];
        int32_t sums[BLOCK * BLOCK];
#ifdef __AMX_TILE__
        configure_tiles();
#endif
#pragma omp for schedule(static)
        for (int64_t item = 0; item < bands * parts; ++item) {
            int64_t first = item / parts * band_rows, part = item % parts;
            int64_t count = rows - first < band_rows ? rows - first : band_rows;
            int64_t padded = (count + BLOCK - 1) / BLOCK * BLOCK;
            prepare_band(x, first, count, padded, inner, norm, eps, band);
            int64_t unit_end = units * (part + 1) / parts;
            for (int64_t unit = units * part / parts; unit < unit_end; ++unit) {
                for (int64_t r = 0; r < padded; r += BLOCK) {
                    int64_t valid = count - r < BLOCK ? count - r : BLOCK;
                    float *target = out + (first + r) * width + unit * BLOCK;
                    if (!gated && !residual && valid == BLOCK) { /* straight into out */
                        unit_product(&band, r, inner, packed, packed_int8, column_scales, unit,
                                     target, width, sums);
                        continue;
                    }
                    unit_product(&band, r, inner, packed, packed_int8, column_scales, unit,
                                 values, BLOCK, sums);
                    if (gated) /* the up projection's block: the same rows, `units` blocks on */
                        unit_product(&band, r, inner, packed, packed_int8, column_scales,
                                     unit + units, up, BLOCK, sums);
                    const float *base =
                        residual ? residual + (first + r) * width + unit * BLOCK : NULL;
                    write_block(target, width, values, base, gated ? up : NULL, valid);
                }
            }
        }
#ifdef __AMX_TILE__
        _tile_release();
#endif
    }
    free(scratches);
    return 0;
}

/* transformers' rotary position embedding, in place: each of the first `heads` heads of
   `head_dim` columns in every row (rows `stride` floats apart) becomes
   x * cos + rotate_half(x) * sin, rotate_half(x) = (-x2, x1) for the head's halves x1 and x2,
   each product rounded before the sum as in PyTorch's separate operations. cos and sin are
   [rows][head_dim]; head_dim is a multiple of 32. */
void rotary_embedding(float *x, int64_t rows, int64_t stride, int64_t heads, int64_t head_dim,
                      const float *cos, const float *sin) {
    int64_t half = head_dim / 2;
    __m512 sign = _mm512_set1_ps(-0.0f);
#pragma omp parallel for schedule(static)
    for (int64_t row = 0; row < rows; ++row) {
        const float *c = cos + row * head_dim, *s = sin + row * head_dim;
        for (int64_t head = 0; head < heads; ++head) {
            float *v = x + row * stride + head * head_dim;
            for (int64_t k = 0; k < half; k += 16) {
                __m512 low = _mm512_loadu_ps(v + k), high = _mm512_loadu_ps(v + half + k);
                __m512 new_low = _mm512_add_ps(
                    _mm512_mul_ps(low, _mm512_loadu_ps(c + k)),
                    _mm512_mul_ps(_mm512_xor_ps(high, sign), _mm512_loadu_ps(s + k)));
                __m512 new_high = _mm512_add_ps(
                    _mm512_mul_ps(high, _mm512_loadu_ps(c + half + k)),
                    _mm512_mul_ps(low, _mm512_loadu_ps(s + half + k)));
                _mm512_storeu_ps(v + k, new_low);
                _mm512_storeu_ps(v + half + k, new_high);
            }
        }
    }
}

/* Attention over a packed prefix tree (culture_probe.engine.tree_attention), in float32:
   `qkv` [nodes][(heads + 2 kv_heads) * head_dim] holds each node's query, key and value heads
   side by side (the fused layer's q/k/v product, rotated), and `out` [nodes][heads * head_dim]
   gets each node's attention over its ancestors and itself. The nodes come in blocks of `rows`
   consecutive nodes; block b may see the nodes keys[b][0 .. widths[b]) (ascending), and node i
   sees key node k exactly when k <= i < ends[k] (i lies in k's subtree).

   Each (block, key/value head) is one task: the key head is transposed once into `scratch`, and
   every query head that shares it (grouped-query attention) runs over the block's own keys, not
   a width padded to the widest block, four rows at a time. A row's softmax is taken in float32
   with Cephes' exponential; invisible keys get none of it, and keys no row of a group of four
   sees are skipped when the values are summed. head_dim is a multiple of 64.
   Returns 0, or -1 when a thread's scratch could not be allocated. */
#define QUERY_ROWS 4

/* scores[r][j] = q_r . k_j over the block's keys, 32 keys (two vectors) at a time */
static void attention_scores(const float *const q[QUERY_ROWS], const float *kt, int64_t padded,
                             int64_t head_dim, float *scores) {
    for (int64_t j = 0; j < padded; j += 32) {
        int two = j + 16 < padded;
        __m512 acc[QUERY_ROWS][2];
        for (int r = 0; r < QUERY_ROWS; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
        for (int64_t d = 0; d < head_dim; ++d) {
            __m512 k0 = _mm512_load_ps(kt + d * padded + j);
            __m512 k1 = two ? _mm512_load_ps(kt + d * padded + j + 16) : _mm512_setzero_ps();
            for (int r = 0; r < QUERY_ROWS; ++r) {
                __m512 value = _mm512_set1_ps(q[r][d]);
                acc[r][0] = _mm512_fmadd_ps(value, k0, acc[r][0]);
                acc[r][1] = _mm512_fmadd_ps(value, k1, acc[r][1]);
            }
        }
        for (int r = 0; r < QUERY_ROWS; ++r) {
            _mm512_store_ps(scores + r * padded + j, acc[r][0]);
            if (two) _mm512_store_ps(scores + r * padded + j + 16, acc[r][1]);
        }
    }
}

/* a row's scores, times `scaling`, to e^(s - max) over the keys node `node` sees (0 elsewhere);
   returns their sum */
static float attention_weights(float *scores, int64_t padded, float scaling, int32_t node,
                               const int32_t *key_nodes, const int32_t *key_ends) {
    __m512i row = _mm512_set1_epi32(node);
    __m512 scale = _mm512_set1_ps(scaling), largest = _mm512_set1_ps(-INFINITY);
    for (int64_t j = 0; j < padded; j += 16) {
        __mmask16 sees =
            _mm512_cmp_epi32_mask(_mm512_load_si512(key_nodes + j), row, _MM_CMPINT_LE) &
            _mm512_cmp_epi32_mask(row, _mm512_load_si512(key_ends + j), _MM_CMPINT_LT);
        __m512 value = _mm512_mul_ps(_mm512_load_ps(scores + j), scale);
        value = _mm512_mask_blend_ps(sees, _mm512_set1_ps(-INFINITY), value);
        _mm512_store_ps(scores + j, value);
        largest = _mm512_max_ps(largest, value);
    }
    __m512 top = _mm512_set1_ps(_mm512_reduce_max_ps(largest));
    __m512 total = _mm512_setzero_ps();
    for (int64_t j = 0; j < padded; j += 16) {
        __m512 value = _mm512_load_ps(scores + j);
        __mmask16 seen = _mm512_cmp_ps_mask(value, _mm512_set1_ps(-INFINITY), _CMP_NEQ_OQ);
        __m512 weight = _mm512_maskz_mov_ps(seen, exp16(_mm512_sub_ps(value, top)));
        _mm512_store_ps(scores + j, weight);
        total = _mm512_add_ps(total, weight);
    }
    return _mm512_reduce_add_ps(total);
}

/* out_r[0..64) = sum_j weights[r][j] v_j[offset..offset + 64) / totals[r], for the rows
   r < count */
static void attention_values(const float *weights, int64_t padded, int64_t width,
                             const float *const values[], int64_t offset,
                             const float totals[QUERY_ROWS], int count,
                             float *const out[QUERY_ROWS]) {
    __m512 acc[QUERY_ROWS][4];
    for (int r = 0; r < QUERY_ROWS; ++r)
        for (int v = 0; v < 4; ++v) acc[r][v] = _mm512_setzero_ps();
    for (int64_t j = 0; j < width; ++j) {
        const float *w = weights + j;
        if (w[0] == 0.0f && w[padded] == 0.0f && w[2 * padded] == 0.0f && w[3 * padded] == 0.0f)
            continue; /* a key none of the four rows sees */
        const float *value = values[j] + offset;
        __m512 v0 = _mm512_loadu_ps(value), v1 = _mm512_loadu_ps(value + 16);
        __m512 v2 = _mm512_loadu_ps(value + 32), v3 = _mm512_loadu_ps(value + 48);
        for (int r = 0; r < QUERY_ROWS; ++r) {
            __m512 weight = _mm512_set1_ps(w[r * padded]);
            acc[r][0] = _mm512_fmadd_ps(weight, v0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(weight, v1, acc[r][1]);
            acc[r][2] = _mm512_fmadd_ps(weight, v2, acc[r][2]);
            acc[r][3] = _mm512_fmadd_ps(weight, v3, acc[r][3]);
        }
    }
    for (int r = 0; r < count; ++r) {
        __m512 inverse = _mm512_set1_ps(1.0f / totals[r]);
        for (int v = 0; v < 4; ++v)
            _mm512_storeu_ps(out[r] + 16 * v, _mm512_mul_ps(acc[r][v], inverse));
    }
}

/* where a thread keeps one block's key head: transposed keys, value pointers, the keys' nodes and
   subtree ends, and four rows of scores */
typedef struct {
    float *kt;            /* [head_dim][padded] */
    const float **values; /* [padded] */
    int32_t *key_nodes;   /* [padded], past the width: a node no row reaches */
    int32_t *key_ends;    /* [padded] */
    float *scores;        /* [QUERY_ROWS][padded] */
} attention_scratch;

/* the rows [first, first + rows) of one block, every query head that key/value head `head`
   serves, into out */
static void attention_block(const float *qkv, int64_t stride, int64_t nodes, int64_t heads,
                            int64_t kv_heads, int64_t head_dim, float scaling, int64_t head,
                            const int64_t *block_keys, int64_t width, int64_t first,
                            int64_t rows, const int64_t *ends, attention_scratch s, float *out) {
    int64_t padded = (width + 15) / 16 * 16, group = heads / kv_heads;
    const float *key_column = qkv + (heads + head) * head_dim;
    const float *value_column = qkv + (heads + kv_heads + head) * head_dim;
    for (int64_t j = 0; j < padded; ++j) {
        int real = j < width;
        int64_t node = real ? block_keys[j] : 0;
        s.key_nodes[j] = real ? (int32_t)node : INT32_MAX;
        s.key_ends[j] = real ? (int32_t)ends[node] : 0;
        s.values[j] = value_column + node * stride;
        for (int64_t d = 0; d < head_dim; ++d)
            s.kt[d * padded + j] = real ? key_column[node * stride + d] : 0.0f;
    }
    int64_t last = first + rows < nodes ? first + rows : nodes;
    for (int64_t h = head * group; h < (head + 1) * group; ++h)
        for (int64_t i = first; i < last; i += QUERY_ROWS) {
            int count = last - i < QUERY_ROWS ? (int)(last - i) : QUERY_ROWS;
            const float *q[QUERY_ROWS];
            float *o[QUERY_ROWS], totals[QUERY_ROWS];
            for (int r = 0; r < QUERY_ROWS; ++r) {
                int64_t node = i + (r < count ? r : 0); /* missing rows repeat the first */
                q[r] = qkv + node * stride + h * head_dim;
                o[r] = out + node * heads * head_dim + h * head_dim;
            }
            attention_scores(q, s.kt, padded, head_dim, s.scores);
            for (int r = 0; r < QUERY_ROWS; ++r)
                totals[r] = attention_weights(s.scores + r * padded, padded, scaling,
                                              (int32_t)(i + (r < count ? r : 0)), s.key_nodes,
                                              s.key_ends);
            for (int64_t d = 0; d < head_dim; d += 64) {
                float *slice[QUERY_ROWS];
                for (int r = 0; r < QUERY_ROWS; ++r) slice[r] = o[r] + d;
                attention_values(s.scores, padded, width, s.values, d, totals, count, slice);
            }
        }
}

int tree_attention(const float *qkv, int64_t nodes, int64_t heads, int64_t kv_heads,
                   int64_t head_dim, float scaling, const int64_t *keys, int64_t key_stride,
                   const int64_t *widths, int64_t blocks, int64_t rows, const int64_t *ends,
                   float *out) {
    int64_t stride = (heads + 2 * kv_heads) * head_dim;
    int64_t padded = (key_stride + 15) / 16 * 16;
    int failed = 0;
#pragma omp parallel
    {
        attention_scratch s;
        s.kt = aligned_alloc(64, head_dim * padded * sizeof(float));
        s.values = malloc(padded * sizeof(float *));
        s.key_nodes = aligned_alloc(64, padded * sizeof(int32_t));
        s.key_ends = aligned_alloc(64, padded * sizeof(int32_t));
        s.scores = aligned_alloc(64, QUERY_ROWS * padded * sizeof(float));
        int ready = s.kt && s.values && s.key_nodes && s.key_ends && s.scores;
        if (!ready) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp barrier
        if (!failed) {
#pragma omp for schedule(dynamic, 1)
            for (int64_t task = 0; task < blocks * kv_heads; ++task) {
                int64_t block = task / kv_heads, head = task % kv_heads;
                attention_block(qkv, stride, nodes, heads, kv_heads, head_dim, scaling, head,
                                keys + block * key_stride, widths[block], block * rows, rows,
                                ends, s, out);
            }
        }
        free(s.kt);
        free((void *)s.values);
        free(s.key_nodes);
        free(s.key_ends);
        free(s.scores);
    }
    return failed ? -1 : 0;
}
