/* A float32 linear layer from bfloat16 products on Intel AMX tiles, for `--dtype mixed`.

   out[rows, columns] = x[rows, inner] @ W.T, with x float32 and W bfloat16. Each row of x is
   split into a bfloat16 head and the bfloat16 remainder the head could not hold (about 16
   significant bits together), both are multiplied by W on the tiles, and the two products
   accumulate into one float32 result: float32 accumulation and float32 output, which PyTorch's
   own bfloat16 products on the CPU do not offer (they round their output to bfloat16).

   W is packed once, by pack_weight, into the layout a B tile reads: groups of 16 columns, each a
   run of `inner / 2` rows of 16 column pairs (bfloat16 pairs along `inner`, "VNNI"). Each
   output block of 32 x 32 is four 16 x 16 float32 accumulator tiles fed by two A tiles (16 rows
   x 32 inner values) and two B tiles per step of 32 along `inner`.

   The rows are cut into bands (their head and remainder fit a thread's scratch, which stays in
   the core's cache while every column pair passes over it); the bands, and for few rows the
   column pairs too, are shared among the OpenMP threads, which are PyTorch's own when this
   library is loaded after torch. Built at run time by culture_probe.backends.amx with
   -march=native -mamx-tile -mamx-bf16 -fopenmp. */

#include <immintrin.h>
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

static inline uint16_t to_bfloat16(float value) {
    uint32_t bits;
    memcpy(&bits, &value, sizeof bits);
    bits += 0x7FFF + ((bits >> 16) & 1); /* round to nearest, ties to even (finite inputs) */
    return (uint16_t)(bits >> 16);
}

static inline float from_bfloat16(uint16_t value) {
    uint32_t bits = (uint32_t)value << 16;
    float result;
    memcpy(&result, &bits, sizeof result);
    return result;
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

/* rows [first, first + count) of x as head and remainder, zero rows up to `padded` */
static void split_rows(const float *x, int64_t first, int64_t count, int64_t padded,
                       int64_t inner, uint16_t *head, uint16_t *rest) {
    for (int64_t r = 0; r < padded; ++r) {
        uint16_t *h = head + r * inner, *l = rest + r * inner;
        if (r >= count) {
            memset(h, 0, inner * sizeof *h);
            memset(l, 0, inner * sizeof *l);
            continue;
        }
        const float *row = x + (first + r) * inner;
        for (int64_t k = 0; k < inner; ++k) {
            uint16_t top = to_bfloat16(row[k]);
            h[k] = top;
            l[k] = to_bfloat16(row[k] - from_bfloat16(top)); /* exact in float32 */
        }
    }
}

/* tiles 0-3 = the 32 x 32 block of (head + rest) @ columns b0 | b1 */
static void block_product(const uint16_t *head, const uint16_t *rest, int64_t inner,
                          const uint16_t *b0, const uint16_t *b1) {
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    for (int part = 0; part < 2; ++part) {
        const uint16_t *a = part ? rest : head;
        for (int64_t k = 0; k < inner; k += 32) {
            _tile_loadd(4, a + k, inner * 2);
            _tile_loadd(6, b0 + k * 16, 64);
            _tile_loadd(5, a + 16 * inner + k, inner * 2);
            _tile_loadd(7, b1 + k * 16, 64);
            _tile_dpbf16ps(0, 4, 6);
            _tile_dpbf16ps(1, 4, 7);
            _tile_dpbf16ps(2, 5, 6);
            _tile_dpbf16ps(3, 5, 7);
        }
    }
}

static void store_block(float *out, int64_t columns, int64_t rows, int64_t first,
                        int64_t column, float *spare) {
    if (first + BLOCK <= rows) {
        float *c = out + first * columns + column;
        _tile_stored(0, c, columns * 4);
        _tile_stored(1, c + 16, columns * 4);
        _tile_stored(2, c + 16 * columns, columns * 4);
        _tile_stored(3, c + 16 * columns + 16, columns * 4);
        return;
    }
    /* the last, partial block: through a spare block, then only its real rows */
    _tile_stored(0, spare, BLOCK * 4);
    _tile_stored(1, spare + 16, BLOCK * 4);
    _tile_stored(2, spare + 16 * BLOCK, BLOCK * 4);
    _tile_stored(3, spare + 16 * BLOCK + 16, BLOCK * 4);
    for (int64_t r = first; r < rows; ++r)
        memcpy(out + r * columns + column, spare + (r - first) * BLOCK, BLOCK * 4);
}

/* out = x @ W.T as described above; inner and columns multiples of 32, W packed by pack_weight.
   scratch_bytes: how much of x's split a thread holds at once. Returns 0, or -1 when the
   threads' scratch could not be allocated (out is then untouched). */
int split_product(const float *x, int64_t rows, int64_t inner, const uint16_t *packed,
                  int64_t columns, int64_t scratch_bytes, float *out) {
    int64_t threads = omp_get_max_threads();
    int64_t blocks = (rows + BLOCK - 1) / BLOCK;
    int64_t widest = scratch_bytes / (4 * inner) / BLOCK;
    if (widest < 1) widest = 1;
    /* as many bands as the scratch needs, rounded up to a multiple of the threads */
    int64_t bands = (blocks + widest - 1) / widest;
    bands = (bands + threads - 1) / threads * threads;
    if (bands > blocks) bands = blocks;
    int64_t band = (blocks + bands - 1) / bands * BLOCK;
    bands = (rows + band - 1) / band;
    /* fewer bands than threads: the threads also share out the column pairs */
    int64_t pairs = columns / BLOCK;
    int64_t parts = bands >= threads ? 1 : (threads + bands - 1) / bands;
    if (parts > pairs) parts = pairs;
    int64_t pair_stride = inner / 2 * 16 * 2 * 2; /* two 16-column groups */
    int64_t scratch = band * inner; /* bfloat16 values in a thread's head, and in its rest */
    uint16_t *scratches = aligned_alloc(64, threads * 2 * scratch * sizeof(uint16_t));
    if (!scratches) return -1;
#pragma omp parallel num_threads(threads)
    {
        uint16_t *head = scratches + omp_get_thread_num() * 2 * scratch;
        uint16_t *rest = head + scratch;
        float spare[BLOCK * BLOCK];
        configure_tiles();
#pragma omp for schedule(static)
        for (int64_t item = 0; item < bands * parts; ++item) {
            int64_t first = item / parts * band, part = item % parts;
            int64_t count = rows - first < band ? rows - first : band;
            int64_t padded = (count + BLOCK - 1) / BLOCK * BLOCK;
            split_rows(x, first, count, padded, inner, head, rest);
            int64_t pair_end = pairs * (part + 1) / parts;
            for (int64_t pair = pairs * part / parts; pair < pair_end; ++pair) {
                const uint16_t *b0 = packed + pair * pair_stride;
                const uint16_t *b1 = b0 + pair_stride / 2;
                for (int64_t r = 0; r < padded; r += BLOCK) {
                    block_product(head + r * inner, rest + r * inner, inner, b0, b1);
                    store_block(out, columns, rows, first + r, pair * BLOCK, spare);
                }
            }
        }
        _tile_release();
    }
    free(scratches);
    return 0;
}
