/*
 * A small "game": a lit, rotating, colour-faced cube rendered with GLES2, the last frame
 * written as a PNG. Headless by default: a surfaceless EGL display and an FBO. With
 * --window: an X11 window (Xlib, on $DISPLAY) with an EGL window surface, each frame read
 * back from the window's back buffer and then swapped, so the PNG is a screenshot of it.
 *
 * It is an ordinary GL program (links -lEGL -lGL -lX11 -lz) and knows nothing of capsule,
 * so the same source runs against the real libraries or against capsule's shims.
 *
 * Usage: game [--window] [OUT_DIR]   (default: the current directory)
 * Writes OUT_DIR/game.png (rendered on the main thread) and OUT_DIR/game-thread.png (the
 * same frames rendered on a thread the game creates; with --window game-window.png and
 * game-window-thread.png, both drawn into the window), and prints `key: value` lines:
 * renderer, window (none, or x11 and its size), png, thread_png, image_hash, zlib,
 * load_ms, startup_ms, frame_ms, thread_frame_ms (the median frame after the first few),
 * rss_kb.
 *
 * The PNG encoder uses whichever libz.so.1 the game was given: the host's, or the game's
 * own runtime copy (examples/game/runtime). `zlib:` names the version and file it got, and
 * `image_hash` hashes the pixels themselves, since two zlibs write different PNG bytes for
 * the same image.
 *
 * Known pixels: see scene.h.
 */
#define _GNU_SOURCE
#include <X11/Xlib.h>
#include <X11/Xutil.h>
#include <dlfcn.h>
#include <EGL/egl.h>
#include <EGL/eglext.h>
#include <GLES2/gl2.h>
#include <GLES2/gl2ext.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

/* The cube, its shaders, draw_frame and write_png, shared with the SDL2 build. */
#include "scene.h"

/* FRAMES are rendered; frame_ms is the median time of those after the first WARMUP
 * (llvmpipe compiles the shaders and starts its threads while drawing the first ones). */
enum { FRAMES = 128, WARMUP = 8 };

struct frame_result {
    unsigned char pixels[SIZE * SIZE * 4]; /* top row first */
    double frame_ms;
};

static EGLDisplay display;
static EGLConfig config;
/* --window: the X11 window's EGL surface, drawn into instead of an FBO. */
static EGLSurface window_surface = EGL_NO_SURFACE;

static void die(const char *what) {
    fprintf(stderr, "game: %s failed (EGL error 0x%x, GL error 0x%x)\n", what, eglGetError(),
            glGetError());
    exit(1);
}

static double now_ms(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Milliseconds since the process started. With shims the capsule loads in a library
 * constructor, before main, so only this clock sees that cost. Started by exec_timed
 * (GAME_EXEC_MONOTONIC_NS), from its execve to the microsecond; otherwise from the
 * process's creation, at the kernel's clock-tick resolution. */
static double ms_since_process_start(void) {
    const char *exec_ns = getenv("GAME_EXEC_MONOTONIC_NS");
    if (exec_ns && *exec_ns)
        return now_ms(CLOCK_MONOTONIC) - strtoll(exec_ns, NULL, 10) / 1e6;
    FILE *f = fopen("/proc/self/stat", "r");
    if (!f)
        return -1;
    char buf[1024];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    /* Field 22 (starttime); counted after the last ')' since the command name may hold
     * spaces. */
    char *p = strrchr(buf, ')');
    unsigned long long start = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d "
                            "%*d %*d %*d %*d %llu",
                     &start) != 1)
        return -1;
    return now_ms(CLOCK_BOOTTIME) - start * 1e3 / sysconf(_SC_CLK_TCK);
}

/* Resident memory now, from /proc/self/status; -1 when unreadable. */
static long rss_kb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    char line[256];
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb;
}


/* A GLES2 context current on this thread, drawing into the window's surface or, with no
 * window, into a SIZE x SIZE FBO with a depth buffer. */
static EGLContext make_context_and_fbo(void) {
    static const EGLint attributes[] = {EGL_CONTEXT_CLIENT_VERSION, 2, EGL_NONE};
    if (!eglBindAPI(EGL_OPENGL_ES_API))
        die("eglBindAPI");
    EGLContext context = eglCreateContext(display, config, EGL_NO_CONTEXT, attributes);
    if (context == EGL_NO_CONTEXT)
        die("eglCreateContext");
    if (!eglMakeCurrent(display, window_surface, window_surface, context))
        die("eglMakeCurrent");
    if (window_surface != EGL_NO_SURFACE)
        return context;
    GLuint fbo, colour, depth;
    glGenFramebuffers(1, &fbo);
    glBindFramebuffer(GL_FRAMEBUFFER, fbo);
    glGenRenderbuffers(1, &colour);
    glBindRenderbuffer(GL_RENDERBUFFER, colour);
    /* 8 bits per channel (OES_rgb8_rgba8), so read-back colours are exact. */
    glRenderbufferStorage(GL_RENDERBUFFER, GL_RGBA8_OES, SIZE, SIZE);
    glFramebufferRenderbuffer(GL_FRAMEBUFFER, GL_COLOR_ATTACHMENT0, GL_RENDERBUFFER, colour);
    glGenRenderbuffers(1, &depth);
    glBindRenderbuffer(GL_RENDERBUFFER, depth);
    glRenderbufferStorage(GL_RENDERBUFFER, GL_DEPTH_COMPONENT16, SIZE, SIZE);
    glFramebufferRenderbuffer(GL_FRAMEBUFFER, GL_DEPTH_ATTACHMENT, GL_RENDERBUFFER, depth);
    if (glCheckFramebufferStatus(GL_FRAMEBUFFER) != GL_FRAMEBUFFER_COMPLETE)
        die("glCheckFramebufferStatus");
    return context;
}


static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Render all frames on the calling thread with its own context; keep the last one. */
static void render(struct frame_result *out) {
    EGLContext context = make_context_and_fbo();
    GLuint program = link_program();
    unsigned char *bottom_up = malloc(SIZE * SIZE * 4);
    if (!bottom_up)
        die("malloc");
    double times[FRAMES];
    for (int frame = 0; frame < FRAMES; frame++) {
        double start = now_ms(CLOCK_MONOTONIC);
        draw_frame(program, frame);
        /* Reading back every frame makes each one really finish, as presenting would; in a
         * window it reads the back buffer, before the swap presents it. */
        glReadPixels(0, 0, SIZE, SIZE, GL_RGBA, GL_UNSIGNED_BYTE, bottom_up);
        if (window_surface != EGL_NO_SURFACE && !eglSwapBuffers(display, window_surface))
            die("eglSwapBuffers");
        times[frame] = now_ms(CLOCK_MONOTONIC) - start;
    }
    qsort(times + WARMUP, FRAMES - WARMUP, sizeof times[0], compare_doubles);
    out->frame_ms = times[WARMUP + (FRAMES - WARMUP) / 2];
    if (glGetError() != GL_NO_ERROR)
        die("rendering");
    for (int y = 0; y < SIZE; y++)
        memcpy(out->pixels + y * SIZE * 4, bottom_up + (SIZE - 1 - y) * SIZE * 4, SIZE * 4);
    free(bottom_up);
    glDeleteProgram(program);
    eglMakeCurrent(display, EGL_NO_SURFACE, EGL_NO_SURFACE, EGL_NO_CONTEXT);
    eglDestroyContext(display, context);
}

static void *render_thread(void *out) {
    render(out);
    return NULL;
}


static void save(const char *dir, const char *name, const struct frame_result *r, char *path,
                 size_t path_size) {
    char *absolute = realpath(dir, NULL);
    if (!absolute) {
        fprintf(stderr, "game: output directory %s does not exist\n", dir);
        exit(1);
    }
    snprintf(path, path_size, "%s/%s", absolute, name);
    free(absolute);
    if (!write_png(path, r->pixels)) {
        fprintf(stderr, "game: cannot write %s\n", path);
        exit(1);
    }
}

/* An EGL config for GLES2 windows whose X visual is the screen's default one, which the
 * window is created with (a config of another depth could not draw into it). */
static EGLConfig window_config(Display *x) {
    static const EGLint wanted[] = {EGL_RENDERABLE_TYPE, EGL_OPENGL_ES2_BIT, EGL_SURFACE_TYPE,
                                    EGL_WINDOW_BIT, EGL_RED_SIZE, 8, EGL_GREEN_SIZE, 8,
                                    EGL_BLUE_SIZE, 8, EGL_DEPTH_SIZE, 16, EGL_NONE};
    EGLConfig configs[64];
    EGLint count = 0;
    if (!eglChooseConfig(display, wanted, configs, 64, &count))
        die("eglChooseConfig(GLES2 window)");
    VisualID visual = XVisualIDFromVisual(DefaultVisual(x, DefaultScreen(x)));
    for (EGLint i = 0; i < count; i++) {
        EGLint id = 0;
        if (eglGetConfigAttrib(display, configs[i], EGL_NATIVE_VISUAL_ID, &id) &&
            (VisualID)id == visual)
            return configs[i];
    }
    fprintf(stderr, "game: no EGL config of %d matches the X visual 0x%lx\n", count, visual);
    exit(1);
}

/* A mapped SIZE x SIZE window on $DISPLAY (a private Xvfb in the demo). */
static Window open_window(Display *x) {
    int screen = DefaultScreen(x);
    Window window = XCreateSimpleWindow(x, RootWindow(x, screen), 0, 0, SIZE, SIZE, 0,
                                        BlackPixel(x, screen), BlackPixel(x, screen));
    XStoreName(x, window, "capsule demo game");
    /* A fixed size: a window manager must not resize what the screenshot reads. */
    XSizeHints hints = {.flags = PMinSize | PMaxSize,
                        .min_width = SIZE, .min_height = SIZE,
                        .max_width = SIZE, .max_height = SIZE};
    XSetWMNormalHints(x, window, &hints);
    XMapWindow(x, window);
    XSync(x, False);
    return window;
}

int main(int argc, char **argv) {
    int windowed = argc > 1 && strcmp(argv[1], "--window") == 0;
    const char *dir = argc > 1 + windowed ? argv[1 + windowed] : ".";
    build_cube();

    Display *x = NULL;
    Window window = 0;
    if (windowed) {
        x = XOpenDisplay(NULL);
        if (!x) {
            fprintf(stderr, "game: --window: cannot open the X display '%s'\n",
                    getenv("DISPLAY") ? getenv("DISPLAY") : "(DISPLAY unset)");
            return 1;
        }
        window = open_window(x);
    }

    double before = now_ms(CLOCK_MONOTONIC);
    if (windowed) {
        display = eglGetPlatformDisplay(EGL_PLATFORM_X11_KHR, x, NULL);
        if (display == EGL_NO_DISPLAY)
            die("eglGetPlatformDisplay(EGL_PLATFORM_X11_KHR)");
    } else {
        display = eglGetPlatformDisplay(EGL_PLATFORM_SURFACELESS_MESA, EGL_DEFAULT_DISPLAY, NULL);
        if (display == EGL_NO_DISPLAY)
            die("eglGetPlatformDisplay(EGL_PLATFORM_SURFACELESS_MESA)");
    }
    if (!eglInitialize(display, NULL, NULL))
        die("eglInitialize");
    double load_ms = now_ms(CLOCK_MONOTONIC) - before;
    double startup_ms = ms_since_process_start();

    if (windowed) {
        config = window_config(x);
        window_surface = eglCreateWindowSurface(display, config, (EGLNativeWindowType)window, NULL);
        if (window_surface == EGL_NO_SURFACE)
            die("eglCreateWindowSurface");
    } else {
        static const EGLint wanted[] = {EGL_RENDERABLE_TYPE, EGL_OPENGL_ES2_BIT,
                                        EGL_SURFACE_TYPE, EGL_PBUFFER_BIT, EGL_NONE};
        EGLint count = 0;
        if (!eglChooseConfig(display, wanted, &config, 1, &count) || count != 1)
            die("eglChooseConfig(GLES2)");
    }

    static struct frame_result main_result, thread_result;
    render(&main_result);

    pthread_t thread;
    if (pthread_create(&thread, NULL, render_thread, &thread_result) != 0 ||
        pthread_join(thread, NULL) != 0)
        die("pthread_create");

    /* The renderer string needs a current context. */
    EGLContext context = make_context_and_fbo();
    const char *renderer = (const char *)glGetString(GL_RENDERER);
    printf("renderer: %s\n", renderer ? renderer : "(none)");
    eglMakeCurrent(display, EGL_NO_SURFACE, EGL_NO_SURFACE, EGL_NO_CONTEXT);
    eglDestroyContext(display, context);
    if (windowed)
        printf("window: x11 %dx%d on %s\n", SIZE, SIZE, DisplayString(x));
    else
        printf("window: none\n");

    char path[4096], thread_path[4096];
    save(dir, windowed ? "game-window.png" : "game.png", &main_result, path, sizeof path);
    save(dir, windowed ? "game-window-thread.png" : "game-thread.png", &thread_result,
         thread_path, sizeof thread_path);
    printf("png: %s\n", path);
    printf("thread_png: %s\n", thread_path);
    printf("image_hash: %016llx\n", image_hash(main_result.pixels, sizeof main_result.pixels));
    Dl_info zlib;
    printf("zlib: %s (%s)\n", zlibVersion(),
           dladdr((void *)zlibVersion, &zlib) && zlib.dli_fname ? zlib.dli_fname : "unknown file");
    printf("load_ms: %.2f\n", load_ms);
    printf("startup_ms: %.2f\n", startup_ms);
    printf("frame_ms: %.3f\n", main_result.frame_ms);
    printf("thread_frame_ms: %.3f\n", thread_result.frame_ms);
    printf("rss_kb: %ld\n", rss_kb());
    if (windowed)
        eglDestroySurface(display, window_surface);
    eglTerminate(display);
    if (windowed) {
        XDestroyWindow(x, window);
        XCloseDisplay(x);
    }
    return 0;
}
