/* An SDL2 OpenGL window on X11: create a window and a GL context, clear to a known colour,
   read a pixel back, swap, and print the renderer, the pixel and the libGL file SDL loaded.
   SDL dlopens libGL.so.1 itself (found through LD_LIBRARY_PATH: the real one or the shim), so
   every GL function comes through SDL_GL_GetProcAddress; the program links only -lSDL2. */
#define _GNU_SOURCE
#include <SDL.h>
#include <dlfcn.h>
#include <link.h>
#include <stdio.h>

typedef void (*clear_color_fn)(float, float, float, float);
typedef void (*clear_fn)(unsigned);
typedef void (*read_pixels_fn)(int, int, int, int, unsigned, unsigned, void *);
typedef const unsigned char *(*get_string_fn)(unsigned);
typedef void (*finish_fn)(void);

enum { GL_COLOR_BUFFER_BIT = 0x4000, GL_RGBA = 0x1908, GL_UNSIGNED_BYTE = 0x1401,
       GL_RENDERER = 0x1F01, SIZE = 64 };

static int fail(const char *what) {
    fprintf(stderr, "sdl_window: %s failed: %s\n", what, SDL_GetError());
    return 1;
}

int main(void) {
    if (SDL_Init(SDL_INIT_VIDEO) != 0)
        return fail("SDL_Init(SDL_INIT_VIDEO)");
    /* 8 bits per channel, so the colour reads back exactly. */
    SDL_GL_SetAttribute(SDL_GL_RED_SIZE, 8);
    SDL_GL_SetAttribute(SDL_GL_GREEN_SIZE, 8);
    SDL_GL_SetAttribute(SDL_GL_BLUE_SIZE, 8);
    SDL_GL_SetAttribute(SDL_GL_DOUBLEBUFFER, 1);
    SDL_Window *window = SDL_CreateWindow("capsule SDL test", SDL_WINDOWPOS_UNDEFINED,
                                          SDL_WINDOWPOS_UNDEFINED, SIZE, SIZE, SDL_WINDOW_OPENGL);
    if (!window)
        return fail("SDL_CreateWindow(SDL_WINDOW_OPENGL)");
    SDL_GLContext context = SDL_GL_CreateContext(window);
    if (!context)
        return fail("SDL_GL_CreateContext");
    if (SDL_GL_MakeCurrent(window, context) != 0)
        return fail("SDL_GL_MakeCurrent");

    clear_color_fn clear_color = (clear_color_fn)SDL_GL_GetProcAddress("glClearColor");
    clear_fn clear = (clear_fn)SDL_GL_GetProcAddress("glClear");
    read_pixels_fn read_pixels = (read_pixels_fn)SDL_GL_GetProcAddress("glReadPixels");
    get_string_fn get_string = (get_string_fn)SDL_GL_GetProcAddress("glGetString");
    finish_fn finish = (finish_fn)SDL_GL_GetProcAddress("glFinish");
    if (!clear_color || !clear || !read_pixels || !get_string || !finish)
        return fail("SDL_GL_GetProcAddress");

    const unsigned char *renderer = get_string(GL_RENDERER);
    printf("renderer: %s\n", renderer ? (const char *)renderer : "(none)");
    clear_color(1.0f, 0.5f, 0.0f, 1.0f);
    clear(GL_COLOR_BUFFER_BIT);
    finish();
    unsigned char pixel[4] = {0};
    read_pixels(SIZE / 2, SIZE / 2, 1, 1, GL_RGBA, GL_UNSIGNED_BYTE, pixel);
    printf("pixel: %u,%u,%u,%u\n", pixel[0], pixel[1], pixel[2], pixel[3]);
    SDL_GL_SwapWindow(window);

    /* The libGL.so.1 SDL loaded: the same object this lookup finds in the program's
       namespace. */
    void *gl = dlopen("libGL.so.1", RTLD_LAZY | RTLD_NOLOAD);
    struct link_map *map = NULL;
    printf("libgl: %s\n", gl && dlinfo(gl, RTLD_DI_LINKMAP, &map) == 0 ? map->l_name : "(not loaded)");

    SDL_GL_DeleteContext(context);
    SDL_DestroyWindow(window);
    SDL_Quit();
    return pixel[0] == 255 && pixel[1] == 128 && pixel[2] == 0 && pixel[3] == 255 ? 0 : 1;
}
