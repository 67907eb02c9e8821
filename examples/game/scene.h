/*
 * The demo game's scene, shared by game.c (EGL, Xlib) and examples/runtime/sdl_game.c (an
 * SDL2 window): the cube, its shaders, one frame's draw calls, and the PNG writer, so both
 * programs draw the same pixels. The includer provides the GL entry points (GLES2) and
 * die(), and links zlib.
 *
 * Known pixels, for tests: every corner is the background BG; the square from (8,8) to
 * (23,23) (top-left origin) is the HUD marker colour MARK; the cube covers the centre.
 * Animation is driven by the frame number only, so the output is deterministic.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

enum { SIZE = 256, MARK_X = 8, MARK_Y = 8, MARK_SIZE = 16 };

static const float BG[3] = {24 / 255.0f, 28 / 255.0f, 48 / 255.0f};
static const float MARK[3] = {1.0f, 200 / 255.0f, 0.0f};

static void die(const char *what);

/* FNV-1a (64 bits) of the pixels: equal images, equal hashes, whatever zlib wrote them. */
static unsigned long long image_hash(const unsigned char *pixels, size_t len) {
    unsigned long long h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++)
        h = (h ^ pixels[i]) * 0x100000001b3ULL;
    return h;
}

/* ---- matrices (column-major, as GL takes them) ---- */

static void mat_mul(float out[16], const float a[16], const float b[16]) {
    float r[16];
    for (int c = 0; c < 4; c++)
        for (int row = 0; row < 4; row++) {
            float s = 0;
            for (int k = 0; k < 4; k++)
                s += a[k * 4 + row] * b[c * 4 + k];
            r[c * 4 + row] = s;
        }
    memcpy(out, r, sizeof r);
}

static void mat_rotation(float m[16], float angle, float x, float y, float z) {
    float c = cosf(angle), s = sinf(angle), t = 1 - c;
    float r[16] = {t * x * x + c,     t * x * y + s * z, t * x * z - s * y, 0,
                   t * x * y - s * z, t * y * y + c,     t * y * z + s * x, 0,
                   t * x * z + s * y, t * y * z - s * x, t * z * z + c,     0,
                   0,                 0,                 0,                 1};
    memcpy(m, r, sizeof r);
}

static void mat_perspective(float m[16], float fovy, float near, float far) {
    float f = 1 / tanf(fovy / 2);
    float r[16] = {f, 0, 0, 0, 0, f, 0, 0, 0, 0, (far + near) / (near - far), -1,
                   0, 0, 2 * far * near / (near - far), 0};
    memcpy(m, r, sizeof r);
}

/* ---- the scene ---- */

static const char *VERTEX_SHADER =
    "uniform mat4 mvp;\n"
    "uniform mat4 model;\n"
    "attribute vec3 position;\n"
    "attribute vec3 normal;\n"
    "attribute vec3 colour;\n"
    "varying vec3 v_colour;\n"
    "void main() {\n"
    "  vec3 n = normalize(mat3(model) * normal);\n"
    "  float diffuse = max(dot(n, normalize(vec3(0.4, 0.7, 1.0))), 0.0);\n"
    "  v_colour = colour * (0.25 + 0.75 * diffuse);\n"
    "  gl_Position = mvp * vec4(position, 1.0);\n"
    "}\n";

static const char *FRAGMENT_SHADER =
    "precision mediump float;\n"
    "varying vec3 v_colour;\n"
    "void main() { gl_FragColor = vec4(v_colour, 1.0); }\n";

/* 6 faces x 2 triangles x 3 vertices; per vertex: position, normal, colour. */
enum { CUBE_VERTICES = 36, FLOATS_PER_VERTEX = 9 };
static float cube[CUBE_VERTICES * FLOATS_PER_VERTEX];

static void build_cube(void) {
    static const float normals[6][3] = {{1, 0, 0},  {-1, 0, 0}, {0, 1, 0},
                                        {0, -1, 0}, {0, 0, 1},  {0, 0, -1}};
    static const float colours[6][3] = {{0.9f, 0.2f, 0.2f}, {0.2f, 0.9f, 0.3f},
                                        {0.2f, 0.4f, 1.0f}, {1.0f, 0.9f, 0.2f},
                                        {0.9f, 0.3f, 0.9f}, {0.2f, 0.9f, 0.9f}};
    static const int corners[6][2] = {{-1, -1}, {1, -1}, {1, 1}, {-1, -1}, {1, 1}, {-1, 1}};
    float *v = cube;
    for (int face = 0; face < 6; face++) {
        const float *n = normals[face];
        /* Two axes spanning the face, u x w = n, so triangles wind counter-clockwise. */
        float u[3] = {n[1] != 0 || n[2] != 0 ? 1.0f : 0.0f, n[0] != 0 ? 1.0f : 0.0f, 0};
        float w[3] = {n[1] * u[2] - n[2] * u[1], n[2] * u[0] - n[0] * u[2],
                      n[0] * u[1] - n[1] * u[0]};
        for (int i = 0; i < 6; i++) {
            float a = corners[i][0] * 0.5f, b = corners[i][1] * 0.5f;
            for (int k = 0; k < 3; k++)
                v[k] = n[k] * 0.5f + u[k] * a + w[k] * b;
            memcpy(v + 3, n, 3 * sizeof(float));
            /* A per-vertex tint so each face shades across. */
            for (int k = 0; k < 3; k++)
                v[6 + k] = colours[face][k] * (0.75f + 0.25f * (corners[i][0] + corners[i][1]) / 2);
            v += FLOATS_PER_VERTEX;
        }
    }
}

static GLuint compile(GLenum type, const char *source) {
    GLuint shader = glCreateShader(type);
    glShaderSource(shader, 1, &source, NULL);
    glCompileShader(shader);
    GLint ok = 0;
    glGetShaderiv(shader, GL_COMPILE_STATUS, &ok);
    if (!ok) {
        char log[1024];
        glGetShaderInfoLog(shader, sizeof log, NULL, log);
        fprintf(stderr, "game: shader: %s\n", log);
        exit(1);
    }
    return shader;
}

static GLuint link_program(void) {
    GLuint program = glCreateProgram();
    glAttachShader(program, compile(GL_VERTEX_SHADER, VERTEX_SHADER));
    glAttachShader(program, compile(GL_FRAGMENT_SHADER, FRAGMENT_SHADER));
    glBindAttribLocation(program, 0, "position");
    glBindAttribLocation(program, 1, "normal");
    glBindAttribLocation(program, 2, "colour");
    glLinkProgram(program);
    GLint ok = 0;
    glGetProgramiv(program, GL_LINK_STATUS, &ok);
    if (!ok)
        die("glLinkProgram");
    return program;
}

static void draw_frame(GLuint program, int frame) {
    float angle = frame * 0.05f + 0.3f;
    float rotate_y[16], rotate_x[16], model[16], projection[16], mvp[16];
    mat_rotation(rotate_y, angle, 0, 1, 0);
    /* Spin about the vertical axis under a fixed tilt, so the top and two sides show. */
    mat_rotation(rotate_x, 0.5f, 1, 0, 0);
    mat_mul(model, rotate_x, rotate_y);
    mat_perspective(projection, 0.9f, 0.5f, 10.0f);
    float view[16] = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, -2.4f, 1};
    mat_mul(mvp, view, model);
    mat_mul(mvp, projection, mvp);

    glViewport(0, 0, SIZE, SIZE);
    glDisable(GL_SCISSOR_TEST);
    glEnable(GL_DEPTH_TEST);
    glClearColor(BG[0], BG[1], BG[2], 1);
    glClear(GL_COLOR_BUFFER_BIT | GL_DEPTH_BUFFER_BIT);
    glUseProgram(program);
    glUniformMatrix4fv(glGetUniformLocation(program, "mvp"), 1, GL_FALSE, mvp);
    glUniformMatrix4fv(glGetUniformLocation(program, "model"), 1, GL_FALSE, model);
    const GLsizei stride = FLOATS_PER_VERTEX * sizeof(float);
    for (int i = 0; i < 3; i++) {
        glVertexAttribPointer(i, 3, GL_FLOAT, GL_FALSE, stride, cube + 3 * i);
        glEnableVertexAttribArray(i);
    }
    glDrawArrays(GL_TRIANGLES, 0, CUBE_VERTICES);

    /* The HUD marker: a flat square at a fixed place, drawn with a scissored clear. GL's
     * window origin is bottom-left. */
    glEnable(GL_SCISSOR_TEST);
    glScissor(MARK_X, SIZE - MARK_Y - MARK_SIZE, MARK_SIZE, MARK_SIZE);
    glClearColor(MARK[0], MARK[1], MARK[2], 1);
    glClear(GL_COLOR_BUFFER_BIT);
    glDisable(GL_SCISSOR_TEST);
}

/* ---- PNG: signature, IHDR, one zlib IDAT, IEND ---- */

static void put_be32(unsigned char *p, uint32_t v) {
    p[0] = v >> 24, p[1] = v >> 16, p[2] = v >> 8, p[3] = v;
}

static int write_chunk(FILE *f, const char *type, const unsigned char *data, uint32_t len) {
    unsigned char head[8];
    put_be32(head, len);
    memcpy(head + 4, type, 4);
    uLong crc = crc32(crc32(0, NULL, 0), head + 4, 4);
    crc = crc32(crc, data, len);
    unsigned char tail[4];
    put_be32(tail, crc);
    return fwrite(head, 1, 8, f) == 8 && fwrite(data, 1, len, f) == len &&
           fwrite(tail, 1, 4, f) == 4;
}

static int write_png(const char *path, const unsigned char *rgba) {
    /* Each scanline starts with filter type 0 (none). */
    size_t raw_len = SIZE * (1 + SIZE * 4);
    unsigned char *raw = malloc(raw_len);
    uLongf packed_len = compressBound(raw_len);
    unsigned char *packed = malloc(packed_len);
    if (!raw || !packed)
        return 0;
    for (int y = 0; y < SIZE; y++) {
        raw[y * (1 + SIZE * 4)] = 0;
        memcpy(raw + y * (1 + SIZE * 4) + 1, rgba + y * SIZE * 4, SIZE * 4);
    }
    int ok = compress(packed, &packed_len, raw, raw_len) == Z_OK;
    unsigned char ihdr[13];
    put_be32(ihdr, SIZE);
    put_be32(ihdr + 4, SIZE);
    ihdr[8] = 8;  /* bits per channel */
    ihdr[9] = 6;  /* RGBA */
    ihdr[10] = 0; /* deflate */
    ihdr[11] = 0; /* adaptive filtering */
    ihdr[12] = 0; /* no interlace */
    FILE *f = ok ? fopen(path, "wb") : NULL;
    ok = f && fwrite("\x89PNG\r\n\x1a\n", 1, 8, f) == 8 && write_chunk(f, "IHDR", ihdr, 13) &&
         write_chunk(f, "IDAT", packed, packed_len) && write_chunk(f, "IEND", NULL, 0);
    if (f && fclose(f) != 0)
        ok = 0;
    free(raw);
    free(packed);
    return ok;
}
