mod behaviour;
