/* A float32 linear layer from bfloat16 and int8 products on Intel AMX tiles, for `--dtype mixed`.

   out[rows, columns] = x[rows, inner] @ W.T, with x float32 and W bfloat16. Each row of x is
   split into a bfloat16 head and the remainder the head could not hold. The head is multiplied
   by W in bfloat16 on the tiles, with float32 accumulation and float32 output, which PyTorch's
   own bfloat16 products on the CPU do not offer (they round their output to bfloat16).

   The remainder is at most half a unit in the head's last place, 2**-8 of the input, so its
   product needs only a few significant bits: it is carried in int8, each row with a power-of-two
   scale (its largest value lands above 63.5 and at most 127), and multiplied on the int8 tiles,
   which do twice the bfloat16 tiles' work per instruction, by an int8 copy of W with a
   power-of-two scale per column. Power-of-two scales keep every rescaling exact. Rounding the
   remainder to int8 moves each value by less than 2**-8 / 127 (about 2**-15) of its row's largest
   input, where a bfloat16 input alone is off by up to 2**-8 of its own size; the int8 weights are
   within 1/127 of their column's largest.

   W is packed once, by pack_weight, into the layout a B tile reads: groups of 16 columns, each a
   run of `inner / 2` rows of 16 column pairs (bfloat16 pairs along `inner`, "VNNI"); and by
   pack_weight_int8 into groups of 16 columns of `depth / 4` rows of 16 column quadruples, with
   `depth` the inner dimension padded with zeros to a multiple of 64. Each output block of
   32 x 32 is four 16 x 16 accumulator tiles fed by two A tiles (16 rows x 64 bytes) and two B
   tiles per step: 32 inner values for the head, 64 for the remainder.

   The rows are cut into bands (their head and remainder fit a thread's scratch, which stays in
   the core's cache while every column pair passes over it); the bands, and for few rows the
   column pairs too, are shared among the OpenMP threads, which are PyTorch's own when this
   library is loaded after torch. Built at run time by culture_probe.backends.amx with
   -march=native -mamx-tile -mamx-bf16 -mamx-int8 -fopenmp. */

#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18
#define BLOCK 32

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

static inline float from_bfloat16(uint16_t value) {
    uint32_t bits = (uint32_t)value << 16;
    float result;
    memcpy(&result, &bits, sizeof result);
    return result;
}

/* the inner dimension of the int8 layout: `inner` padded with zeros to a step of 64 */
int64_t int8_depth(int64_t inner) { return (inner + 63) / 64 * 64; }

/* the smallest power of two `scale` with largest / scale <= 127; 0 when every value is (nearly)
   zero, which would leave no finite inverse */
static inline float power_of_two_scale(float largest) {
    if (!(largest > 0x1p-100f)) return 0.0f;
    int exponent;
    float mantissa = frexpf(largest / 127.0f, &exponent); /* in [0.5, 1) */
    return ldexpf(1.0f, mantissa == 0.5f ? exponent - 1 : exponent);
}

/* weight [columns, inner] bfloat16, row-major -> packed [columns / 16][inner / 2][16][2] */
void pack_weight(const uint16_t *weight, int64_t columns, int64_t inner, uint16_t *packed) {
    for (int64_t column = 0; column < columns; ++column) {
        int64_t group = column / 16, lane = column % 16;
        for (int64_t k = 0; k < inner; ++k) {
            int64_t row = group * (inner / 2) + k / 2;
            packed[(row * 16 + lane) * 2 + k % 2] = weight[column * inner + k];
        }
    }
}

/* weight [columns, inner] bfloat16 -> packed [columns / 16][depth / 4][16][4] int8 and a
   power-of-two scale per column: weight ~ packed * scale */
void pack_weight_int8(const uint16_t *weight, int64_t columns, int64_t inner, int8_t *packed,
                      float *scales) {
    int64_t depth = int8_depth(inner);
    memset(packed, 0, columns * depth);
    for (int64_t column = 0; column < columns; ++column) {
        const uint16_t *values = weight + column * inner;
        float largest = 0.0f;
        for (int64_t k = 0; k < inner; ++k) largest = fmaxf(largest, fabsf(from_bfloat16(values[k])));
        float scale = power_of_two_scale(largest), inverse = scale > 0.0f ? 1.0f / scale : 0.0f;
        scales[column] = scale;
        int64_t group = column / 16, lane = column % 16;
        for (int64_t k = 0; k < inner; ++k) {
            int64_t row = group * (depth / 4) + k / 4;
            packed[(row * 16 + lane) * 4 + k % 4] = (int8_t)nearbyintf(from_bfloat16(values[k]) * inverse);
        }
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

/* where a thread keeps a band of rows of x, split */
typedef struct {
    uint16_t *head;     /* [band][inner] bfloat16 */
    int8_t *rest;       /* [band][depth] int8 */
    float *rest_scales; /* [band] */
} split_band;

/* 16 values of x: their bfloat16 head (rounded to nearest, ties to even) and the remainder */
static inline __m512 split16(const float *x, uint16_t *head) {
    __m512 value = _mm512_loadu_ps(x);
    __m256i top = (__m256i)_mm512_cvtneps_pbh(value);
    _mm256_storeu_si256((__m256i *)head, top);
    __m512 back = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(top), 16));
    return _mm512_sub_ps(value, back); /* exact in float32 */
}

/* rows [first, first + count) of x as head and int8 remainder, zero rows up to `padded`; two
   passes over each row (in the core's cache): the first finds the remainder's scale */
static void split_rows(const float *x, int64_t first, int64_t count, int64_t padded,
                       int64_t inner, int64_t depth, split_band band) {
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
        __m512 largest = _mm512_setzero_ps();
        for (int64_t k = 0; k < inner; k += 16)
            largest = _mm512_max_ps(largest, _mm512_abs_ps(split16(row + k, h + k)));
        float scale = power_of_two_scale(_mm512_reduce_max_ps(largest));
        __m512 inverse = _mm512_set1_ps(scale > 0.0f ? 1.0f / scale : 0.0f);
        for (int64_t k = 0; k < inner; k += 16) {
            __m512 rest = split16(row + k, h + k);
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

/* out = x @ W.T as described above; inner and columns multiples of 32, W packed by pack_weight
   and pack_weight_int8. scratch_bytes: how much of x's split a thread holds at once. Returns 0,
   or -1 when the threads' scratch could not be allocated (out is then untouched). */
int split_product(const float *x, int64_t rows, int64_t inner, const uint16_t *packed,
                  const int8_t *packed_int8, const float *column_scales, int64_t columns,
                  int64_t scratch_bytes, float *out) {
    int64_t threads = omp_get_max_threads();
    int64_t depth = int8_depth(inner);
    int64_t row_bytes = 2 * inner + depth + 4;
    int64_t blocks = (rows + BLOCK - 1) / BLOCK;
    int64_t widest = scratch_bytes / row_bytes / BLOCK;
    if (widest < 1) widest = 1;
    /* as many bands as the scratch needs, rounded up to a multiple of the threads */
    int64_t bands = (blocks + widest - 1) / widest;
    bands = (bands + threads - 1) / threads * threads;
    if (bands > blocks) bands = blocks;
    int64_t band_rows = (blocks + bands - 1) / bands * BLOCK;
    bands = (rows + band_rows - 1) / band_rows;
    /* fewer bands than threads: the threads also share out the column pairs */
    int64_t pairs = columns / BLOCK;
    int64_t parts = bands >= threads ? 1 : (threads + bands - 1) / bands;
    if (parts > pairs) parts = pairs;
    int64_t pair_stride = inner / 2 * 16 * 2 * 2;   /* two 16-column groups of bfloat16 */
    int64_t int8_pair_stride = depth / 4 * 16 * 4 * 2; /* and of int8 */
    int64_t scratch = (band_rows * row_bytes + 63) / 64 * 64;
    char *scratches = aligned_alloc(64, threads * scratch);
    if (!scratches) return -1;
#pragma omp parallel num_threads(threads)
    {
        char *mine = scratches + omp_get_thread_num() * scratch;
        split_band band = {(uint16_t *)mine, (int8_t *)(mine + band_rows * 2 * inner),
                           (float *)(mine + band_rows * (2 * inner + depth))};
        float spare[BLOCK * BLOCK];
        int32_t sums[BLOCK * BLOCK];
        configure_tiles();
#pragma omp for schedule(static)
        for (int64_t item = 0; item < bands * parts; ++item) {
            int64_t first = item / parts * band_rows, part = item % parts;
            int64_t count = rows - first < band_rows ? rows - first : band_rows;
            int64_t padded = (count + BLOCK - 1) / BLOCK * BLOCK;
            split_rows(x, first, count, padded, inner, depth, band);
            int64_t pair_end = pairs * (part + 1) / parts;
            for (int64_t pair = pairs * part / parts; pair < pair_end; ++pair) {
                const uint16_t *b0 = packed + pair * pair_stride;
                const int8_t *c0 = packed_int8 + pair * int8_pair_stride;
                for (int64_t r = 0; r < padded; r += BLOCK) {
                    /* a whole block straight into out; the last, partial one through spare */
                    int whole = first + r + BLOCK <= rows;
                    float *block = whole ? out + (first + r) * columns + pair * BLOCK : spare;
                    int64_t stride = whole ? columns : BLOCK;
                    head_product(band.head + r * inner, inner, b0, b0 + pair_stride / 2);
                    store_tiles(block, stride * 4);
                    rest_product(band.rest + r * depth, depth, c0, c0 + int8_pair_stride / 2);
                    store_tiles(sums, BLOCK * 4);
                    add_rest(block, stride, sums, band.rest_scales + r,
                             column_scales + pair * BLOCK);
                    if (!whole)
                        for (int64_t row = first + r; row < rows; ++row)
                            memcpy(out + row * columns + pair * BLOCK,
                                   spare + (row - first - r) * BLOCK, BLOCK * 4);
                }
            }
        }
        _tile_release();
    }
    free(scratches);
    return 0;
}
