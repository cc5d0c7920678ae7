mod behaviour;
mod gate;
