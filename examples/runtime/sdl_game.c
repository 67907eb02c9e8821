/*
 * The demo game's scene (examples/game/scene.h) in an SDL2 window, as a game shipped
 * against a pinned runtime is written: SDL2 makes the X11 window and the GL context
 * (GLX, or EGL with SDL_VIDEO_X11_FORCE_EGL=1), dlopening libGL.so.1 or libEGL.so.1 itself;
 * the GLES2 calls go through libGLESv2.so.2, whichever API made the context current.
 *
 * Usage: sdl_game OUT_DIR. Renders FRAMES frames, each read back from the window's back
 * buffer before the swap, writes the last as OUT_DIR/sdl-game.png, and prints `key: value`
 * lines: sdl (the SDL2 version it runs on), renderer, libgl and libegl (the file SDL loaded,
 * or "(not loaded)"), libstdcxx, png, image_hash, zlib.
 *
 * Built with -lstdc++ kept (--no-as-needed), standing for a C++ game's own libstdc++: the
 * runtime's (GCC 10) copy, older than the one the host's LLVM needs.
 *
 * It uses nothing newer than SDL 2.0.14 (Debian 11), the runtime's copy.
 */
#define _GNU_SOURCE
#include <GLES2/gl2.h>
#include <SDL.h>
#include <dlfcn.h>
#include <link.h>

#include "../game/scene.h"

/* The last frame of game.c's run, so the picture can be compared with its screenshot. */
enum { FRAMES = 128 };

static void die(const char *what) {
    fprintf(stderr, "sdl_game: %s failed (SDL: %s, GL error 0x%x)\n", what, SDL_GetError(),
            glGetError());
    exit(1);
}

/* The file of the already loaded `soname`, as ld.so names it in the program's namespace. */
static const char *loaded(const char *soname) {
    void *handle = dlopen(soname, RTLD_LAZY | RTLD_NOLOAD);
    struct link_map *map = NULL;
    return handle && dlinfo(handle, RTLD_DI_LINKMAP, &map) == 0 ? map->l_name : "(not loaded)";
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: sdl_game OUT_DIR\n");
        return 2;
    }
    if (SDL_Init(SDL_INIT_VIDEO) != 0)
        die("SDL_Init(SDL_INIT_VIDEO)");
    /* 8 bits per channel, so read-back colours are exact; GLES2, as the scene's shaders. */
    SDL_GL_SetAttribute(SDL_GL_RED_SIZE, 8);
    SDL_GL_SetAttribute(SDL_GL_GREEN_SIZE, 8);
    SDL_GL_SetAttribute(SDL_GL_BLUE_SIZE, 8);
    SDL_GL_SetAttribute(SDL_GL_DEPTH_SIZE, 16);
    SDL_GL_SetAttribute(SDL_GL_DOUBLEBUFFER, 1);
    SDL_GL_SetAttribute(SDL_GL_CONTEXT_PROFILE_MASK, SDL_GL_CONTEXT_PROFILE_ES);
    SDL_GL_SetAttribute(SDL_GL_CONTEXT_MAJOR_VERSION, 2);
    SDL_GL_SetAttribute(SDL_GL_CONTEXT_MINOR_VERSION, 0);
    SDL_Window *window = SDL_CreateWindow("capsule runtime game", SDL_WINDOWPOS_UNDEFINED,
                                          SDL_WINDOWPOS_UNDEFINED, SIZE, SIZE, SDL_WINDOW_OPENGL);
    if (!window)
        die("SDL_CreateWindow(SDL_WINDOW_OPENGL)");
    SDL_GLContext context = SDL_GL_CreateContext(window);
    if (!context)
        die("SDL_GL_CreateContext");
    if (SDL_GL_MakeCurrent(window, context) != 0)
        die("SDL_GL_MakeCurrent");

    build_cube();
    GLuint program = link_program();
    static unsigned char bottom_up[SIZE * SIZE * 4], pixels[SIZE * SIZE * 4];
    for (int frame = 0; frame < FRAMES; frame++) {
        draw_frame(program, frame);
        glReadPixels(0, 0, SIZE, SIZE, GL_RGBA, GL_UNSIGNED_BYTE, bottom_up);
        SDL_GL_SwapWindow(window);
    }
    if (glGetError() != GL_NO_ERROR)
        die("rendering");
    for (int y = 0; y < SIZE; y++)
        memcpy(pixels + y * SIZE * 4, bottom_up + (SIZE - 1 - y) * SIZE * 4, SIZE * 4);

    SDL_version version;
    SDL_GetVersion(&version);
    printf("sdl: %d.%d.%d\n", version.major, version.minor, version.patch);
    const char *renderer = (const char *)glGetString(GL_RENDERER);
    printf("renderer: %s\n", renderer ? renderer : "(none)");
    printf("libgl: %s\n", loaded("libGL.so.1"));
    printf("libegl: %s\n", loaded("libEGL.so.1"));
    printf("libstdcxx: %s\n", loaded("libstdc++.so.6"));

    char path[4096];
    snprintf(path, sizeof path, "%s/sdl-game.png", argv[1]);
    if (!write_png(path, pixels))
        die("write_png");
    printf("png: %s\n", path);
    printf("image_hash: %016llx\n", image_hash(pixels, sizeof pixels));
    Dl_info zlib;
    printf("zlib: %s (%s)\n", zlibVersion(),
           dladdr((void *)zlibVersion, &zlib) && zlib.dli_fname ? zlib.dli_fname : "unknown file");

    glDeleteProgram(program);
    SDL_GL_DeleteContext(context);
    SDL_DestroyWindow(window);
    SDL_Quit();
    return 0;
}
